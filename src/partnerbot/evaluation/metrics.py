"""The staff evaluation harness: small checks on each case's answer, metrics, comparisons and gates.

The cases themselves (their format, loading and validation) live in `cases`.
"""

from __future__ import annotations

import re
import statistics
import time
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partnerbot.answers import Answer, Outcome
from partnerbot.errors import EvalError, InputError, StoreError
from partnerbot.evaluation.cases import Case
from partnerbot.evaluation.evidence import Span, holds_evidence, locate_evidence
from partnerbot.phrases import CITATION_RE

_CITED_RUN = re.compile(r"(?:\[\d+\])+")  # a generated answer's sentences each end with one run of markers


@dataclass
class CaseResult:
    """What one case produced and why it passed or failed."""

    id: str
    passed: bool
    reasons: list[str]
    question: str
    answer: str
    refused: bool
    sources: list[dict[str, Any]]
    retrieved_doc_ids: list[str]
    latency_ms: float
    file: str = ""
    expected_sources: list[str] = field(default_factory=list)
    facts_found: int = 0
    facts_total: int = 0
    refuse: bool = False
    citations_valid: bool = True
    status: str = "answered"
    in_scope: bool = True
    has_evidence: bool = False
    gold: list[bool] = field(default_factory=list)  # per answer sentence: does it hold gold evidence?
    mode: str = "extractive"
    fallback: str = ""  # why generation fell back to the quoted answer
    dropped: list[dict[str, str]] = field(default_factory=list)  # generated sentences that failed verification
    extractive: str = ""  # the quoted answer, when generation was tried
    kept: int = 0  # generated sentences that passed verification
    outcome: str = "answered"  # the answer's outcome: answered, uncertain, declined or unavailable


def fact_found(fact: str, text: str) -> bool:
    """Does `fact` occur in `text` as whole words and numbers ("25" does not match "2025"), ignoring case?"""
    return re.search(rf"(?<![\w.,]){re.escape(fact)}(?![\w]|[.,]\d)", text, re.I) is not None


def check_case(case: Case, answer: Answer, doc_texts: dict[str, str], spans: dict[str, Span] | None = None,
               status: str = "") -> CaseResult:
    """Apply the case's checks to an answer; each failed check adds a reason."""
    spans = spans or {}
    status = status or ("refused" if answer.refused else "uncertain" if answer.outcome == "uncertain" else "answered")
    reasons: list[str] = []
    cited = list(dict.fromkeys(s.doc_id for s in answer.sources))
    gold_spans = [spans[q] for q in case.evidence if q in spans]
    gold = [holds_evidence(s.doc_id, s.start, s.end, gold_spans) for s in answer.sources]
    found = 0
    if status == "unavailable":
        reasons.append("the store was unavailable")
    elif case.input_error:
        if status != "input_error":
            reasons.append("expected an input error")
    elif status == "input_error":
        reasons.append(f"input error: {answer.text}")
    elif case.refuse:
        if not answer.refused:
            reasons.append("answered a refuse case" if status == "answered" else "showed passages on a refuse case")
        if answer.sources:
            reasons.append(f"cited sources on a refuse case ({', '.join(cited)})")
    else:
        # Helpful: answered with a gold first sentence, or uncertain with gold among the passages shown.
        if answer.refused:
            reasons.append("refused an in-scope question")
        elif gold_spans and status == "answered" and not (gold and gold[0]):
            reasons.append("the answer's first sentence does not hold the gold evidence")
        elif gold_spans and status == "uncertain" and not any(gold):
            reasons.append("no passage shown holds the gold evidence")
        elif not gold_spans and case.sources and not set(case.sources) & set(cited):
            exp = " or ".join(case.sources)
            reasons.append(f"expected source {exp} not cited (cited: {', '.join(cited) or 'none'})")
        for fact in case.facts:
            if any(fact_found(f, answer.text) for f in fact):
                found += 1
            elif not answer.refused and not gold_spans:  # with gold evidence, holding it is the check
                reasons.append(f"fact {' or '.join(repr(f) for f in fact)} missing")
    valid = citations_valid(answer, doc_texts)
    if not valid:
        reasons.append("invalid citations: a [n] without a source, an uncited source, or a quote not verbatim")
    return CaseResult(
        id=case.id, passed=not reasons, reasons=reasons, question=case.question, answer=answer.text,
        refused=answer.refused, sources=[s.to_dict() for s in answer.sources],
        retrieved_doc_ids=list(answer.retrieved_doc_ids), latency_ms=round(answer.timings_ms.get("total", 0.0), 2),
        file=case.file, expected_sources=list(case.sources), facts_found=found, facts_total=len(case.facts),
        refuse=case.refuse, citations_valid=valid, status=status, in_scope=case.in_scope,
        has_evidence=bool(gold_spans), gold=gold, mode=answer.mode, fallback=answer.fallback,
        dropped=[{"text": d.text, "reason": d.reason} for d in answer.dropped], extractive=answer.extractive,
        kept=len(_CITED_RUN.findall(answer.text)) if answer.mode == "generated" else 0, outcome=answer.outcome,
    )


def citations_valid(answer: Answer, doc_texts: dict[str, str]) -> bool:
    """Every `[n]` has source n, sources are 1..N all cited, and quotes sit verbatim at their offsets."""
    cited = {int(m) for m in CITATION_RE.findall(answer.text)} if not answer.refused else set()
    numbers = [s.n for s in answer.sources]
    if numbers != list(range(1, len(numbers) + 1)) or cited != set(numbers):
        return False
    return all(doc_texts.get(s.doc_id, "")[s.start : s.end] == s.quote for s in answer.sources)


def run_cases(assistant: Any, cases: Sequence[Case], progress: Any = None) -> list[CaseResult]:
    """Run every case through `Assistant.ask` and check it.

    An input error (an empty or over-long question) and a store outage are recorded as such,
    never as refusals.

    Raises:
        EvalError: a case's evidence does not occur exactly once in the corpus.
        PartnerbotError: what `Assistant.ask` raises when there is nothing to measure (no usable index or reader).
    """
    doc_texts = {d: assistant.document(d).text for d in assistant.doc_ids()}
    spans = locate_evidence(cases, doc_texts)
    results = []
    for case in cases:
        t0 = time.perf_counter()
        status = ""
        try:
            answer = assistant.ask(case.question, list(case.history))
        except (InputError, StoreError) as exc:  # any other error (no usable index) leaves nothing to measure
            status = "input_error" if isinstance(exc, InputError) else "unavailable"
            answer = Answer(case.question, Outcome.DECLINED, notice=str(exc),
                            timings_ms={"total": (time.perf_counter() - t0) * 1000})
        results.append(check_case(case, answer, doc_texts, spans, status))
        if progress:
            progress(case)
    return results


def metrics(results: Sequence[CaseResult]) -> dict[str, float]:
    """The aggregate figures; see the README ("Evaluation") for their definitions.

    Cases that hit a store outage are counted in `unavailable` and left out of every other figure;
    input-error cases count only in `pass_rate`.
    """
    judged = [r for r in results if r.status != "unavailable"]
    inscope = [r for r in judged if r.in_scope]
    ranked = [r for r in inscope if r.expected_sources]
    refuse = [r for r in judged if r.refuse]
    gold = [r for r in inscope if r.has_evidence]
    answered_gold = [r for r in gold if r.status == "answered"]

    def rank(r: CaseResult) -> int | None:
        docs = list(dict.fromkeys(r.retrieved_doc_ids))
        hits = [i for i, d in enumerate(docs) if d in r.expected_sources]
        return hits[0] + 1 if hits else None

    def share(items: Sequence[Any], pred: Any) -> float:
        return round(sum(1 for x in items if pred(x)) / len(items), 4) if items else 0.0

    def wrong(r: CaseResult) -> bool:
        """A confident answer whose first sentence is not gold, or any sentence shown on a refuse case."""
        return (r.refuse and bool(r.sources or not r.refused)) or (
            r.in_scope and r.has_evidence and r.status == "answered" and not (r.gold and r.gold[0]))

    def helpful(r: CaseResult) -> bool:
        return (r.status == "answered" and bool(r.gold) and r.gold[0]) or (r.status == "uncertain" and any(r.gold))

    facts_total = sum(r.facts_total for r in inscope)
    sentences = sum(len(r.gold) for r in answered_gold)
    lat = [r.latency_ms for r in judged]
    tried = [r for r in judged if r.extractive]  # cases where generation was tried (an answered question)
    written = sum(r.kept for r in tried) + sum(len(r.dropped) for r in tried)
    generation = {
        "generation_tried": len(tried),
        "generated_sentences_kept": round(sum(r.kept for r in tried) / written, 4) if written else 0.0,
        "fallback_rate": share(tried, lambda r: bool(r.fallback)),
    } if tried else {}
    return {
        "cases": len(results),
        "unavailable": sum(1 for r in results if r.status == "unavailable"),
        "pass_rate": share(judged, lambda r: r.passed),
        "helpful_rate": share(gold, helpful),
        "answer_accuracy": share(gold, lambda r: r.status == "answered" and bool(r.gold) and r.gold[0]),
        "wrong_answer_rate": share(inscope + refuse, wrong),
        "uncertain_rate": share(inscope, lambda r: r.status == "uncertain"),
        "false_refusal_rate": share(inscope, lambda r: r.refused),
        "refusal_accuracy": share(refuse, lambda r: r.refused and not r.sources),
        "answer_precision": round(sum(sum(r.gold) for r in answered_gold) / sentences, 4) if sentences else 0.0,
        "evidence_hit@1": share(gold, lambda r: bool(r.gold) and r.gold[0]),
        "hit@1": share(ranked, lambda r: (rank(r) or 99) <= 1),
        "hit@3": share(ranked, lambda r: (rank(r) or 99) <= 3),
        "hit@5": share(ranked, lambda r: (rank(r) or 99) <= 5),
        "mrr": round(sum(1 / rk for r in ranked if (rk := rank(r))) / len(ranked), 4) if ranked else 0.0,
        "citation_hit": share(ranked, lambda r: bool({s["doc_id"] for s in r.sources} & set(r.expected_sources))),
        "fact_recall": round(sum(r.facts_found for r in inscope) / facts_total, 4) if facts_total else 0.0,
        "citation_validity": share(judged, lambda r: r.citations_valid),
        "latency_ms_p50": round(statistics.median(lat), 2) if lat else 0.0,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else 0.0,
        **generation,
    }


def report(results: Sequence[CaseResult], **extra: Any) -> dict[str, Any]:
    """The machine-readable report written by `eval --json`."""
    keys = ("id", "passed", "status", "outcome", "reasons", "question", "answer", "refused", "sources", "gold",
            "retrieved_doc_ids", "latency_ms", "mode", "fallback", "dropped", "extractive")
    return {"metrics": metrics(results), **extra, "cases": [{k: asdict(r)[k] for k in keys} for r in results]}


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Cases that flipped between two reports, and the change in each metric."""
    before = {c["id"]: c["passed"] for c in previous.get("cases", [])}
    now = {c["id"]: c["passed"] for c in current.get("cases", [])}
    common = before.keys() & now.keys()
    deltas = {}
    for k, v in current.get("metrics", {}).items():
        old = previous.get("metrics", {}).get(k)
        if isinstance(v, (int, float)) and isinstance(old, (int, float)):
            deltas[k] = {"before": old, "after": v, "delta": round(v - old, 4)}
    return {
        "broke": sorted(i for i in common if before[i] and not now[i]),
        "fixed": sorted(i for i in common if not before[i] and now[i]),
        "added": sorted(now.keys() - before.keys()),
        "removed": sorted(before.keys() - now.keys()),
        "metrics": deltas,
    }


def load_thresholds(path: Path) -> dict[str, float]:
    """Minimum figures (`[min]`) and maximum figures (`[max]`) from a TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EvalError(f"{path}: cannot read thresholds ({exc})") from exc
    return {**{f"min:{k}": float(v) for k, v in data.get("min", {}).items()},
            **{f"max:{k}": float(v) for k, v in data.get("max", {}).items()}}


def check_thresholds(figures: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The failed gates, as readable lines; empty when every gate holds."""
    failed = []
    for key, limit in thresholds.items():
        kind, name = key.split(":", 1)
        value = figures.get(name)
        if value is None:
            failed.append(f"{name}: not measured")
        elif kind == "min" and value < limit:
            failed.append(f"{name} = {value} is below the minimum {limit}")
        elif kind == "max" and value > limit:
            failed.append(f"{name} = {value} is above the maximum {limit}")
    return failed
