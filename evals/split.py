"""The one-time split of the evaluation cases into evals/train/ and evals/test/ (kept for the record).

Run once, on 2026-11-28, with the seed below; re-running it on the same drafts gives the same split.
- Cases written before their author read the answering sentence are split at random, half to test.
- Cases whose authors wrote them after reading the corpus (marked in the authors' question drafts) go
  to train only, so that the test split holds only questions written blind.
- The input-error case is a harness check, not a question: it goes to train.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import yaml

SEED = 20261128
HERE = Path(__file__).parent


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def written_after_reading(draft: Path, cases: list[dict]) -> set[str]:
    """Ids of cases not found among the questions drafted before the author's marker line."""
    lines = draft.read_text(encoding="utf-8").splitlines()
    marker = next(i for i, line in enumerate(lines) if "written AFTER reading" in line)
    blind = [norm(line.split("||")[0].split("]", 1)[-1]) for line in lines[:marker]
             if line.strip() and not line.startswith("#")]
    return {c["id"] for c in cases if not any(b and (b in norm(c["question"]) or norm(c["question"]) in b)
                                              for b in blind)}


def main(drafts: Path) -> None:
    old = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
    new_a = yaml.safe_load((drafts / "new-a.yaml").read_text(encoding="utf-8"))
    new_b = yaml.safe_load((drafts / "new-b.yaml").read_text(encoding="utf-8"))
    refuse = yaml.safe_load((drafts / "refuse.yaml").read_text(encoding="utf-8"))
    late = written_after_reading(drafts / "a-questions.txt", new_a) | written_after_reading(
        drafts / "b-questions.txt", new_b)
    train, pool = [], []
    for case in old + new_a + new_b + refuse:
        if case["id"] == "long-over-limit":
            case = {"id": case["id"], "question": case["question"], "input_error": True}
        (train if case["id"] in late or case.get("input_error") else pool).append(case)
    rng = random.Random(SEED)
    order = list(range(len(pool)))
    rng.shuffle(order)
    test_ids = {pool[i]["id"] for i in order[: len(pool) // 2]}
    test = [c for c in pool if c["id"] in test_ids]
    train += [c for c in pool if c["id"] not in test_ids]
    for name, cases in (("train", train), ("test", test)):
        path = HERE / name / "cases.yaml"
        path.parent.mkdir(exist_ok=True)
        header = (f"# The {name} split ({len(cases)} cases), made once by evals/split.py (seed {SEED}).\n"
                  + ("# Used to fit and calibrate the answer selector (`partnerbot tune`).\n" if name == "train"
                     else "# Only ever measured: nothing is fitted or tuned on it.\n"))
        path.write_text(header + yaml.safe_dump(cases, sort_keys=False, allow_unicode=True, width=200),
                        encoding="utf-8")
        print(f"{name}: {len(cases)} cases, {sum(bool(c.get('refuse')) for c in cases)} refuse")
    print(f"written after reading (train only): {len(late)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "drafts")
