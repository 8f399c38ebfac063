"""The unanswered log: what it keeps, its cap and rotation, who writes it, and `partnerbot report unanswered`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, Server
from partnerbot.answering import unanswered
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.unanswered import group, log_files, read, record
from partnerbot.cli import app
from partnerbot.settings import Settings

DAY = dt.date(2026, 11, 20)


def test_log_keeps_text_and_date_only_and_rotates_at_its_cap() -> None:
    s = Settings(log_unanswered=True, unanswered_max_bytes=1000, unanswered_backups=2)
    asked = [f"question number {i:03d} about a program the corpus does not cover" for i in range(100)]
    for q in asked:
        record(s, q, today=DAY)
    files = log_files(s)
    assert [f.name for f in files] == ["unanswered.jsonl.2", "unanswered.jsonl.1", "unanswered.jsonl"]
    assert all(f.stat().st_size <= 1000 for f in files)
    entries, damaged = read(s)
    kept = [e.question for e in entries]
    assert damaged == [] and 10 < len(kept) < 100 and kept == asked[-len(kept):]  # the newest, oldest first
    for line in files[-1].read_text(encoding="utf-8").splitlines():
        assert json.loads(line).keys() == {"date", "question"} and json.loads(line)["date"] == "2026-11-20"


def test_only_front_ends_log_refusals_and_only_when_switched_on(real_index: Path, tmp_path: Path) -> None:
    log = tmp_path / "unanswered.jsonl"
    on = Settings(data_dir=real_index, corpus_dir=ROOT / "corpus", log_unanswered=True, unanswered_log=log)
    front = Assistant(on, unanswered=unanswered.recorder(on))
    assert front.ask("What is the capital of France?").refused
    assert not front.ask("What is HERO Corps?", ["a question that is not kept"]).refused
    assert Assistant(on).ask("What is the capital of Spain?").refused  # an eval or tuning run
    off = on.updated(log_unanswered=False)
    assert Assistant(off, unanswered=unanswered.recorder(off)).ask("What is the capital of Italy?").refused
    env = {"PARTNERBOT_DATA_DIR": str(real_index), "PARTNERBOT_LOG_UNANSWERED": "1", "PARTNERBOT_UNANSWERED_LOG": str(log)}
    assert CliRunner().invoke(app, ["ask", "What is the capital of Peru?"], env=env).exit_code == 0
    cases = tmp_path / "cases.yaml"
    cases.write_text("- id: chile\n  question: What is the capital of Chile?\n  refuse: true\n")
    assert CliRunner().invoke(app, ["eval", "--cases", str(cases)], env=env).exit_code == 0
    entries, _ = read(on)
    assert [e.question for e in entries] == ["What is the capital of France?", "What is the capital of Peru?"]
    assert all(e.date == dt.datetime.now(dt.UTC).date() for e in entries)


def test_the_chat_page_logs_refusals_through_the_same_path(real_index: Path, tmp_path: Path) -> None:
    log = tmp_path / "served.jsonl"
    srv = Server(real_index, ROOT / "corpus", env={"PARTNERBOT_LOG_UNANSWERED": "1",
                                                         "PARTNERBOT_UNANSWERED_LOG": str(log)})
    try:
        assert srv.ask("How tall is the Eiffel Tower?", ["What is HERO Corps?"])["refused"]
        assert not srv.ask("What is the Criminal Alien Program?")["refused"]
    finally:
        srv.stop()
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert lines == [{"date": dt.datetime.now(dt.UTC).date().isoformat(), "question": "How tall is the Eiffel Tower?"}]


def _fill(s: Settings) -> None:
    for q in ("Who leads ICE now?", "Who leads ICE now?", "Who is the current director of ICE?"):
        record(s, q, today=DAY)
    for q in ("What is the budget of the 287(g) program?", "How much money does 287(g) get?"):
        record(s, q, today=DAY)
    record(s, "Give me a recipe for pancakes <script>alert(1)</script>", today=DAY)
    record(s, "What's the weather in Texas?", today=dt.date(2026, 10, 1))


def test_groups_are_by_meaning_and_the_most_frequent_first(model: object) -> None:
    s = Settings(log_unanswered=True)
    _fill(s)
    entries, _ = read(s)
    groups, left_out = group(s, entries)
    assert left_out == 0 and [g.count for g in groups] == [3, 2, 1, 1]
    assert groups[0].questions == (("Who leads ICE now?", 2), ("Who is the current director of ICE?", 1))
    assert {q for q, _ in groups[1].questions} == {"What is the budget of the 287(g) program?",
                                                   "How much money does 287(g) get?"}
    assert groups[-1].first == groups[-1].last == dt.date(2026, 10, 1)  # ties: the most recent first


def test_report_command_filters_by_date_writes_html_and_names_damaged_lines(tmp_path: Path, model: object) -> None:
    s = Settings(log_unanswered=True)
    _fill(s)
    with s.unanswered_path.open("a", encoding="utf-8") as f:
        f.write('{"date": "2026-11-2\n')  # a line torn by a crash
    page = tmp_path / "unanswered.html"
    result = CliRunner().invoke(app, ["report", "unanswered", "--since", "2026-11-01", "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "6 unanswered question(s) since 2026-11-01 in 3 group(s)" in text and "Texas" not in text
    assert text.index("2 × Who leads ICE now?") < text.index("287(g)") < text.index("pancakes")
    assert f"skipped a damaged line: {s.unanswered_path}:8" in " ".join(result.stderr.split())
    html = page.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert html.count("<tr class='group'>") == 3
    bad = CliRunner().invoke(app, ["report", "unanswered", "--since", "last week"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_report_says_when_there_is_nothing_and_the_log_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERBOT_UNANSWERED_LOG", "")  # empty means the default place
    assert Settings().unanswered_path == Settings().data_dir / "unanswered.jsonl"
    result = CliRunner().invoke(app, ["report", "unanswered"])
    assert result.exit_code == 0 and "set PARTNERBOT_LOG_UNANSWERED=1" in " ".join(result.stdout.split())
