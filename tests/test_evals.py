"""The evaluation harness: case validation, reasons, reports, comparisons, gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from typer.testing import CliRunner

from conftest import ROOT
from partnerbot.answers import Answer, Outcome, Passage
from partnerbot.cli import app
from partnerbot.errors import EvalError
from partnerbot.evaluation.cases import load_cases
from partnerbot.evaluation.metrics import Case, check_case, fact_found, locate_evidence, metrics
from partnerbot.index.build import build_index
from partnerbot.settings import Settings
from partnerbot.types import Source

CASES = """
- id: alpha-number
  question: How many spare lighthouse lamps does the Alpha Program keep?
  sources: [alpha]
  facts: ["4817"]
- id: wrong-source
  question: When was the Beta Task Force created?
  sources: [gamma]
  facts: ["2011"]
- id: missing-fact
  question: Who is the director of the Gamma Office?
  sources: [gamma]
  facts: ["Rosalind Quill", ["nonexistent words", "also absent"]]
- id: must-refuse
  question: How many telescopes has the Gamma Office lent?
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
    assert set(data["metrics"]) >= {"evidence_hit@1", "answer_precision", "wrong_answer_rate", "unavailable", "hit@1", "hit@3", "hit@5", "mrr", "citation_hit", "fact_recall",
                                    "refusal_accuracy", "false_refusal_rate", "citation_validity", "pass_rate",
                                    "helpful_rate", "answer_accuracy", "uncertain_rate",
                                    "latency_ms_p50", "latency_ms_p95"}
    assert data["metrics"]["pass_rate"] == round(2 / 6, 4)
    assert data["metrics"]["refusal_accuracy"] == 0.0 and data["metrics"]["citation_validity"] == 1.0
    for case in data["cases"]:
        assert set(case) == {"id", "passed", "status", "outcome", "reasons", "question", "answer", "refused", "sources",
                             "gold", "retrieved_doc_ids", "latency_ms", "mode", "fallback", "dropped", "extractive"}
        assert case["mode"] == "extractive" and case["extractive"] == ""  # no model unless --answerer generated
        assert case["outcome"] in ("answered", "uncertain", "declined")


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: a\n  question: q\n  history:\n    - fine\n    - 3\n",
         ":5: case 'a': 'history' item 2: input should be a valid string"),
        ("- id: a\n  question: q\n  refuse: 'yes'\n", ":3: case 'a': 'refuse': input should be a valid boolean"),
        ("- id: a\n  question: q\n  facts: [2005, {a: 1}]\n", ":3: case 'a': 'facts' item 2: must be a text or a number"),
        ("- id: a\n  question: '   '\n", ":2: case 'a': missing 'question'"),
        ("- id: a\n  question: q\n- just a line\n", ":3: case #2: each case must be a mapping"),
        ("- id: a\n  question: q\n  refuse: true\n  sources: [alpha]\n",
         ":1: case 'a': a refuse or input_error case has no sources, facts or evidence"),
        ("- question: q\n  colour: red\n  evidence: ['']\n",
         ":1: case #1: unknown key(s) colour (allowed: all_evidence, evidence, facts, history, id, input_error, partial, question, refuse, "
         "sources) (line 2); missing 'id'; 'evidence' item 1: must not be blank"),
    ],
)
def test_invalid_cases_name_the_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EvalError) as info:
        load_cases([path], doc_ids={"alpha"})
    assert f"{path}{message}" in str(info.value)


def test_cases_accept_numbers_as_facts_and_empty_lists(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("- id: a\n  question: q\n  history:\n  facts: [2005, [Laredo, 1.5]]\n")
    (case,) = load_cases([path])
    assert case.history == () and case.facts == (("2005",), ("Laredo", "1.5"))


def test_reindex_gate_refuses_a_breaking_edit(tiny_index: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tiny_index.parent / "gate.yaml"
    good.write_text("- id: alpha-number\n  question: How many spare lighthouse lamps does the Alpha Program keep?\n"
                    "  sources: [alpha]\n  facts: ['4817']\n")
    monkeypatch.setenv("PARTNERBOT_EVAL_GATE", "true")
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    result = CliRunner().invoke(app, ["index", "--cases", str(good)])
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "eval gate kept the active version" in text and "alpha-number" in text
    status = CliRunner().invoke(app, ["ask", "How many spare lighthouse lamps does the Alpha Program keep?"])
    assert "4817" in status.output
    forced = CliRunner().invoke(app, ["index", "--cases", str(good), "--force"])
    assert forced.exit_code == 0 and "active version" in forced.output
    assert "5926" in CliRunner().invoke(app, ["ask", "How many spare lighthouse lamps does the Alpha Program keep?"]).output


def test_project_cases_are_valid_and_split() -> None:
    from partnerbot.corpus.parse import load_corpus

    docs = {d.id: d.text for d in load_corpus(ROOT / "corpus")}
    train = load_cases([ROOT / "evals" / "train"], docs)
    test = load_cases([ROOT / "evals" / "test"], docs)
    cases = load_cases([ROOT / "evals" / "train", ROOT / "evals" / "test"], docs)  # no duplicates across splits
    assert len(cases) == len(train) + len(test) >= 350
    assert sum(c.refuse for c in cases) >= 60 and sum(bool(c.history) for c in cases) >= 40
    assert all(c.evidence for c in cases if c.in_scope)
    locate_evidence(cases, docs)  # each quote occurs exactly once
    assert sum(c.refuse for c in test) >= 30 and len(test) >= 150
    for doc in docs:
        assert sum(doc in c.sources for c in test) >= 6, doc


def test_fact_matching_respects_word_and_number_boundaries() -> None:
    assert not fact_found("25", "ICE spoke of partners in 2025")
    assert fact_found("25", "ICE spoke of 25 partner agencies")
    assert not fact_found("25", "in 2025") and not fact_found("25", "1,250 cases") and not fact_found("25", "2.5%")
    assert fact_found("185,884", "ERO carried out 185,884 removals.") and not fact_found("5,884", "185,884")
    assert fact_found("July 30, 2020", "on July 30, 2020, ICE") and fact_found("hsi", "HSI leads it")
    assert not fact_found("HSI", "HSIs")


def test_evidence_must_occur_exactly_once(tmp_path: Path) -> None:
    docs = {"alpha": "The secret number is 4817. The number is 4817 again.", "beta": "Nothing here."}
    path = tmp_path / "cases.yaml"
    path.write_text("- id: once\n  question: q\n  evidence: ['secret number is 4817']\n"
                    "- id: twice\n  question: r\n  evidence: ['is 4817']\n")
    cases = load_cases([path])
    assert locate_evidence(cases[:1], docs)["secret number is 4817"].doc_id == "alpha"
    with pytest.raises(EvalError, match=r"cases.yaml: case 'twice': evidence 'is 4817' occurs 2 times .*alpha"):
        locate_evidence(cases, docs)
    path.write_text("- id: none\n  question: q\n  evidence: ['not in the corpus']\n")
    with pytest.raises(EvalError, match="occurs 0 times in the corpus \\(nowhere\\)"):
        locate_evidence(load_cases([path]), docs)


def test_duplicate_cases_are_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("- id: one\n  question: When were they created?\n  history: [Tell me about BEST]\n")
    b.write_text("- id: two\n  question: when were they created\n  history: ['tell me about BEST.']\n")
    with pytest.raises(EvalError, match=r"b.yaml: case 'two': duplicate case: the same question and history as 'one'"):
        load_cases([a, b])
    b.write_text("- id: two\n  question: when were they created\n")  # another history: another case
    assert len(load_cases([a, b])) == 2


def _answer(question: str, quotes: list[tuple[str, int, int]], refused: bool = False, unavailable: bool = False,
            outcome: str = "") -> Answer:
    sources = tuple(Source(n, "alpha", "Alpha", "https://example.gov/alpha", "2020-01-15", "History", q, s, e, 0.9)
                    for n, (q, s, e) in enumerate(quotes, 1))
    passages = tuple(Passage(q, (n,)) for n, (q, _, _) in enumerate(quotes, 1))
    kind = Outcome.DECLINED if refused or unavailable else Outcome(outcome or "answered")
    return Answer(question, kind, passages, sources, "refused" if kind == Outcome.DECLINED else "",
                  {"total": 1.0})


def test_gold_metrics_input_errors_and_outages() -> None:
    text = "Founded in 1987. The secret number is 4817. It has 42 partners."
    docs = {"alpha": text}
    gold = Case("gold", "What is the secret number?", evidence=("secret number is 4817",), sources=("alpha",),
                facts=(("4817",),))
    spans = locate_evidence([gold], docs)
    first, second, third = (text[0:16], 0, 16), (text[17:43], 17, 43), (text[44:], 44, len(text))
    right = check_case(gold, _answer(gold.question, [second, first]), docs, spans)
    padded = check_case(gold, _answer(gold.question, [first, second]), docs, spans)
    wrong = check_case(gold, _answer(gold.question, [third]), docs, spans)
    unsure = check_case(gold, _answer(gold.question, [third, second], outcome="uncertain"), docs, spans)
    assert right.passed and right.gold == [True, False]
    assert not padded.passed and padded.gold == [False, True]  # a confident answer must lead with the gold
    assert "the answer's first sentence does not hold the gold evidence" in wrong.reasons and not wrong.passed
    assert unsure.passed and unsure.status == "uncertain"  # unsure, but the gold is among the passages shown
    refuse = Case("refuse", "Who leads it today?", refuse=True)
    answered_refuse = check_case(refuse, _answer(refuse.question, [first]), docs, spans)
    unsure_refuse = check_case(refuse, _answer(refuse.question, [first], outcome="uncertain"), docs, spans)
    assert not unsure_refuse.passed and "showed passages on a refuse case" in unsure_refuse.reasons
    too_long = Case("long", "x" * 5000, input_error=True)
    as_error = check_case(too_long, _answer(too_long.question, [], refused=True), docs, spans, status="input_error")
    outage = check_case(gold, _answer(gold.question, [], refused=True, unavailable=True), docs, spans,
                        status="unavailable")
    m = metrics([right, padded, wrong, unsure, answered_refuse, unsure_refuse, as_error, outage])
    assert as_error.passed and as_error.status == "input_error"
    assert m["unavailable"] == 1 and m["cases"] == 8
    assert m["evidence_hit@1"] == round(1 / 4, 4)  # only `right` shows the gold sentence first
    assert m["helpful_rate"] == round(2 / 4, 4)  # `right`, and `unsure` with the gold among its passages
    assert m["answer_accuracy"] == round(1 / 4, 4) and m["uncertain_rate"] == round(1 / 4, 4)
    assert m["answer_precision"] == round(2 / 5, 4)  # over confident answers' sentences only
    # `padded` and `wrong` (confident, wrong first sentence) and both refuse cases (an answer, or passages)
    assert m["wrong_answer_rate"] == round(4 / 6, 4)
    assert m["false_refusal_rate"] == 0.0  # neither the input error nor the outage is a refusal
    assert m["refusal_accuracy"] == 0.0
    assert m["pass_rate"] == round(3 / 7, 4)  # the outage is not judged


def test_a_refusing_gate_exits_3_by_its_verdict_whatever_its_words(tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    model: object) -> None:
    """The exit code comes from the verdict's type (`GateRefusedError`), never from the message's text."""
    from partnerbot.evaluation import gate
    from partnerbot.types import GateVerdict

    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", str(tiny_corpus))
    assert CliRunner().invoke(app, ["index", "--no-eval"]).exit_code == 0
    monkeypatch.setenv("PARTNERBOT_EVAL_GATE", "true")
    monkeypatch.setattr(gate, "reindex_gate", lambda *_a, **_k: lambda _v: GateVerdict(False, "Nope: worse."))
    (tiny_corpus / "beta.md").write_text((tiny_corpus / "beta.md").read_text() + "\nThe task force keeps an archive.\n")
    result = CliRunner().invoke(app, ["index", "--cases", str(tiny_corpus)])
    assert result.exit_code == 3 and "Error: Nope: worse." in result.output, result.output
    assert "active version:" not in result.output
