"""The evaluation harness: case validation, reasons, reports, comparisons, gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from typer.testing import CliRunner

from conftest import ROOT
from partnerbot.cli import app
from partnerbot.errors import EvalError
from partnerbot.evals import load_cases
from partnerbot.index import build_index
from partnerbot.settings import Settings

CASES = """
- id: alpha-number
  question: What is the secret number of the Alpha Program?
  sources: [alpha]
  facts: ["4817"]
- id: wrong-source
  question: When was the Beta Task Force created?
  sources: [gamma]
  facts: ["2011"]
- id: missing-fact
  question: Who heads the Gamma Office?
  sources: [gamma]
  facts: ["Rosalind Quill", ["nonexistent words", "also absent"]]
- id: must-refuse
  question: Who heads the Gamma Office?
  refuse: true
- id: refused-wrongly
  question: Give me a recipe for pancakes
  sources: [alpha]
- id: follow-up
  question: When was it founded?
  history: ["Tell me about the Alpha Program"]
  sources: [alpha]
  facts: ["1987"]
"""


@pytest.fixture
def tiny_index(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch, model: object) -> Path:
    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", str(tiny_corpus))
    build_index(Settings(corpus_dir=tiny_corpus))
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES)
    return cases


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_each_failure_reason_is_reported(tiny_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code, text = run("--cases", str(tiny_index), "--json", str(out))
    assert code == 0, text
    data = json.loads(out.read_text())
    by_id = {c["id"]: c for c in data["cases"]}
    assert by_id["alpha-number"]["passed"] and by_id["follow-up"]["passed"]
    assert by_id["wrong-source"]["reasons"] == ["expected source gamma not cited (cited: beta)"]
    assert by_id["missing-fact"]["reasons"] == ["fact 'nonexistent words' or 'also absent' missing"]
    assert by_id["must-refuse"]["reasons"][0] == "answered a refuse case"
    assert by_id["refused-wrongly"]["reasons"][0] == "refused an in-scope question"
    assert "4 of 6 cases failed" in " ".join(text.split())
    assert text.index("wrong-source") < text.index("alpha-number")  # failures first


def test_json_report_schema(tiny_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    run("--cases", str(tiny_index), "--json", str(out))
    data = json.loads(out.read_text())
    assert set(data["metrics"]) >= {"hit@1", "hit@3", "hit@5", "mrr", "citation_hit", "fact_recall",
                                    "refusal_accuracy", "false_refusal_rate", "citation_validity", "pass_rate",
                                    "latency_ms_p50", "latency_ms_p95"}
    assert data["metrics"]["pass_rate"] == round(2 / 6, 4)
    assert data["metrics"]["refusal_accuracy"] == 0.0 and data["metrics"]["citation_validity"] == 1.0
    for case in data["cases"]:
        assert set(case) == {"id", "passed", "reasons", "question", "answer", "refused", "sources",
                             "retrieved_doc_ids", "latency_ms"}


def test_html_report_opens_in_chromium_with_failure_filter(tiny_index: Path, tmp_path: Path) -> None:
    page_path = tmp_path / "report.html"
    run("--cases", str(tiny_index), "--html", str(page_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(page_path.as_uri())
        expect(page.locator("svg[aria-label='metrics chart']")).to_be_visible()
        expect(page.locator("tr.case")).to_have_count(6)
        expect(page.locator("tr.case.pass").first).to_be_visible()
        page.get_by_label("Show only failures").check()
        expect(page.locator("tr.case.pass").first).to_be_hidden()
        expect(page.locator("tr.case.fail").first).to_be_visible()
        expect(page.locator("#cases")).to_contain_text("answered a refuse case")
        browser.close()


def test_compare_lists_flips_and_metric_changes(tiny_index: Path, tmp_path: Path, tiny_corpus: Path) -> None:
    before = tmp_path / "before.json"
    run("--cases", str(tiny_index), "--json", str(before))
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    build_index(Settings(corpus_dir=tiny_corpus))
    after = tmp_path / "after.json"
    _, text = run("--cases", str(tiny_index), "--json", str(after), "--compare", str(before))
    comparison = json.loads(after.read_text())["comparison"]
    assert comparison["broke"] == ["alpha-number"] and comparison["fixed"] == []
    assert comparison["metrics"]["pass_rate"]["delta"] < 0
    assert "pass -> fail: alpha-number" in text


def test_check_gates_on_thresholds(tiny_index: Path, tmp_path: Path) -> None:
    low = tmp_path / "low.toml"
    low.write_text("[min]\npass_rate = 0.3\n[max]\nfalse_refusal_rate = 0.5\n")
    code, _ = run("--cases", str(tiny_index), "--check", "--thresholds", str(low))
    assert code == 0
    high = tmp_path / "high.toml"
    high.write_text("[min]\npass_rate = 0.9\n")
    code, text = run("--cases", str(tiny_index), "--check", "--thresholds", str(high))
    assert code == 1 and "pass_rate = 0.3333 is below the minimum 0.9" in " ".join(text.split())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: a\n  question: q\n  colour: red\n", "case 'a': unknown key(s) colour"),
        ("- id: a\n", "case 'a': missing 'question'"),
        ("- id: a\n  question: q\n- id: a\n  question: r\n", "case 'a': duplicate id"),
        ("- id: a\n  question: q\n  sources: [nope]\n", "case 'a': unknown doc id(s) nope"),
    ],
)
def test_invalid_cases_name_file_and_case(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EvalError) as info:
        load_cases([path], doc_ids={"alpha"})
    assert str(path) in str(info.value) and message in str(info.value)


def test_reindex_gate_refuses_a_breaking_edit(tiny_index: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tiny_index.parent / "gate.yaml"
    good.write_text("- id: alpha-number\n  question: What is the secret number of the Alpha Program?\n"
                    "  sources: [alpha]\n  facts: ['4817']\n")
    monkeypatch.setenv("PARTNERBOT_EVAL_GATE", "true")
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    result = CliRunner().invoke(app, ["index", "--cases", str(good)])
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "eval gate kept the active version" in text and "alpha-number" in text
    status = CliRunner().invoke(app, ["ask", "What is the secret number of the Alpha Program?"])
    assert "4817" in status.output
    forced = CliRunner().invoke(app, ["index", "--cases", str(good), "--force"])
    assert forced.exit_code == 0 and "active version" in forced.output
    assert "5926" in CliRunner().invoke(app, ["ask", "What is the secret number of the Alpha Program?"]).output


def test_project_cases_file_is_valid() -> None:
    from partnerbot.corpus import load_corpus

    cases = load_cases([ROOT / "evals" / "cases.yaml"], {d.id for d in load_corpus(ROOT / "corpus")})
    assert len(cases) >= 100
    assert sum(c.refuse for c in cases) >= 20
    assert sum(bool(c.history) for c in cases) >= 10
    for doc in ("287g", "best", "ero", "hsi", "ipr-center", "hero-corps", "cyber-crimes-center",
                "criminal-alien-program", "human-rights-violators-war-crimes-center",
                "office-of-partnership-and-engagement", "press-release-2020-07-30"):
        assert sum(doc in c.sources for c in cases) >= 6, doc
