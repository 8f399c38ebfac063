"""Staff close the loop, end to end with the real commands: a question the public asked and partnerbot did not
answer is found in the unanswered log, labelled with its evidence, added to a train split; `partnerbot tune` and
`partnerbot index` run; the same question is then answered from that evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from partnerbot.cli import app

ASKED = "who's the boss of the telescope lending office"
QUILL = "The Gamma Office is headed by Director Rosalind Quill"

# What staff already had for this (test) corpus: a few labelled questions per sentence, and refusals.
KNOWN = [
    ("what does the alpha program do", "maintains coastal lighthouses with local harbor agencies"),
    ("what is alpha", "maintains coastal lighthouses with local harbor agencies"),
    ("when was the alpha program founded", "The Alpha Program was founded in 1987 in Portland, Maine"),
    ("where did alpha start", "The Alpha Program was founded in 1987 in Portland, Maine"),
    ("how many spare lamps does alpha keep", "The Alpha Program keeps 4817 spare lighthouse lamps"),
    ("how many harbor agencies work with alpha", "works with 42 harbor agencies along the Atlantic coast"),
    ("what is the beta task force", "protects apple orchards from frost"),
    ("when was btf created", "The Beta Task Force was created in 2011 in Wenatchee, Washington"),
    ("how many orchard wardens has beta trained", "has trained 350 orchard wardens since 2011"),
    ("what do beta members do on cold nights", "light smudge pots on cold spring nights"),
    ("what is the gamma office", "lends telescopes through public libraries"),
    ("how many telescopes has gamma lent", "had lent 9,300 telescopes to library patrons"),
]
REFUSE = ["what is the capital of france", "how much does a lighthouse keeper earn", "write me a poem about apples",
          "who won the world cup", "how do I renew my passport", "what's the weather in maine tomorrow"]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_a_logged_question_is_labelled_tuned_on_and_then_answered(tiny_corpus: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", str(tiny_corpus))
    monkeypatch.setenv("PARTNERBOT_LOG_UNANSWERED", "1")
    run("index", "--no-eval")
    before = json.loads(run("ask", ASKED, "--json"))
    assert before["outcome"] != "answered" or QUILL not in before["sources"][0]["quote"]
    logged = (Path(tmp_path / "data" / "unanswered.jsonl")).read_text().splitlines()
    assert before["outcome"] == "answered" or ASKED in {json.loads(line)["question"] for line in logged}
    assert ASKED in run("report", "unanswered") or before["outcome"] == "answered"

    # Staff label it and add it to the train split beside what they had.
    cases = [{"id": f"known-{n}", "question": q, "evidence": [e]} for n, (q, e) in enumerate(KNOWN)]
    cases += [{"id": f"refuse-{n}", "question": q, "refuse": True} for n, q in enumerate(REFUSE)]
    cases.append({"id": "logged-boss", "question": ASKED, "evidence": [QUILL]})
    train = tmp_path / "train"
    train.mkdir()
    (train / "cases.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))

    model, reader = tmp_path / "model", tmp_path / "reader.json"
    run("tune", "--cases", str(train), "--folds", "2", "--epochs", "3", "--model-out", str(model), "--out", str(reader))
    monkeypatch.setenv("PARTNERBOT_EMBED_MODEL", str(model))
    monkeypatch.setenv("PARTNERBOT_SELECTOR_PATH", str(reader))
    run("index", "--no-eval")
    after = json.loads(run("ask", ASKED, "--json"))
    assert after["outcome"] == "answered" and QUILL in after["sources"][0]["quote"], after
