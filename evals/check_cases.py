"""Check a cases file on its own, without an index: the format, the doc ids, and that each evidence quote occurs
exactly once in the parsed corpus. For writers of new cases; `partnerbot eval` checks the same on a built index.

    .venv/bin/python evals/check_cases.py evals/train/some-writer.yaml
    .venv/bin/python evals/check_cases.py --dump /tmp/corpus-text   # the parsed text each quote must come from
"""

from __future__ import annotations

import sys
from pathlib import Path

from partnerbot.corpus.parse import load_corpus
from partnerbot.errors import EvalError
from partnerbot.evaluation.cases import load_cases
from partnerbot.evaluation.evidence import locate_evidence

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    docs = {d.id: d.text for d in load_corpus(ROOT / "corpus")}
    if argv[:1] == ["--dump"]:
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        for doc_id, text in docs.items():
            (out / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        print(f"{len(docs)} documents written to {out}")
        return 0
    status = 0
    for name in argv:
        try:
            cases = load_cases([Path(name)], docs)
        except EvalError as exc:
            print(f"ERROR {exc}")
            status = 1
            continue
        for case in cases:  # every evidence problem, not only the first
            try:
                locate_evidence([case], docs)
            except EvalError as exc:
                print(f"ERROR {exc}")
                status = 1
        follow = sum(bool(c.history) for c in cases)
        refuse = sum(c.refuse for c in cases)
        print(f"{name}: {len(cases)} cases ok ({refuse} refuse, {follow} follow-ups, "
              f"{sum(len(c.history) >= 2 for c in cases)} with 2+ earlier turns)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
