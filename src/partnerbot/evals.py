"""The staff evaluation harness: cases in YAML, small checks, metrics, comparisons and gates."""

from __future__ import annotations

import re
import statistics
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import EvalError, InputError
from .phrases import CITATION_RE
from .types import Answer

CASE_KEYS = {"id", "question", "history", "sources", "facts", "evidence", "refuse", "input_error"}
STATUSES = ("answered", "refused", "input_error", "unavailable")
_CITED_RUN = re.compile(r"(?:\[\d+\])+")  # a generated answer's sentences each end with one run of markers


@dataclass(frozen=True)
class Case:
    """One evaluation case (the fixed YAML format)."""

    id: str
    question: str
    history: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    facts: tuple[tuple[str, ...], ...] = ()
    evidence: tuple[str, ...] = ()
    refuse: bool = False
    input_error: bool = False
    file: str = ""

    @property
    def in_scope(self) -> bool:
        return not (self.refuse or self.input_error)


@dataclass(frozen=True)
class Span:
    """Where an evidence quote sits in the corpus."""

    doc_id: str
    start: int
    end: int


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


def case_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML files named, with each directory replaced by the `*.yaml` files under it (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.rglob("*.yaml")))
        elif path.exists():
            files.append(path)
        else:
            raise EvalError(f"{path}: no such cases file or folder")
    return files


def _key(question: str, history: Sequence[str]) -> tuple[str, ...]:
    """What makes two cases the same case: their words, in order, ignoring case and punctuation."""
    return tuple(" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in (*history, question))


def load_cases(paths: Sequence[Path], doc_ids: Iterable[str] | None = None) -> list[Case]:
    """Read and validate case files (or folders of them).

    Raises:
        EvalError: unknown keys, a missing question, duplicate ids, duplicate cases (the same question
            and history) or unknown doc ids, naming the file and the case.
    """
    known = set(doc_ids) if doc_ids is not None else None
    cases: list[Case] = []
    seen: dict[str, str] = {}
    asked: dict[tuple[str, ...], str] = {}
    for path in case_files(paths):
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalError(f"{path}: cannot read the cases file ({exc})") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise EvalError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
        if not isinstance(raw, list):
            raise EvalError(f"{path}: a cases file must be a YAML list of cases")
        for n, item in enumerate(raw, 1):
            case = _parse_case(item, n, path, known)
            where = f"{path}: case {case.id!r}"
            if case.id in seen:
                raise EvalError(f"{where}: duplicate id (also in {seen[case.id]})")
            seen[case.id] = str(path)
            key = _key(case.question, case.history)
            if key in asked:
                raise EvalError(f"{where}: duplicate case: the same question and history as {asked[key]!r}")
            asked[key] = case.id
            cases.append(case)
    return cases


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _parse_case(item: Any, n: int, path: Path, known: set[str] | None) -> Case:
    name = item.get("id") if isinstance(item, dict) else None
    where = f"{path}: case {name!r}" if name else f"{path}: case #{n}"
    if not isinstance(item, dict):
        raise EvalError(f"{where}: each case must be a mapping")
    unknown = set(item) - CASE_KEYS
    if unknown:
        raise EvalError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                        f"(allowed: {', '.join(sorted(CASE_KEYS))})")
    if not isinstance(name, str) or not name:
        raise EvalError(f"{where}: missing 'id'")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalError(f"{where}: missing 'question'")
    history = item.get("history") or []
    sources = item.get("sources") or []
    facts = item.get("facts") or []
    evidence = item.get("evidence") or []
    if not _strings(history):
        raise EvalError(f"{where}: 'history' must be a list of strings")
    if not _strings(sources):
        raise EvalError(f"{where}: 'sources' must be a list of doc ids")
    if not _strings(evidence) or any(not e.strip() for e in evidence):
        raise EvalError(f"{where}: 'evidence' must be a list of quoted corpus passages")
    if known is not None:
        bad = [s for s in sources if s not in known]
        if bad:
            raise EvalError(f"{where}: unknown doc id(s) {', '.join(bad)}")
    norm: list[tuple[str, ...]] = []
    for fact in facts if isinstance(facts, list) else [None]:
        if isinstance(fact, (str, int, float)) and not isinstance(fact, bool):
            norm.append((str(fact),))
        elif isinstance(fact, list) and fact and all(isinstance(f, (str, int, float)) for f in fact):
            norm.append(tuple(str(f) for f in fact))
        else:
            raise EvalError(f"{where}: 'facts' must be a list of strings or lists of strings")
    flags = {k: item.get(k, False) for k in ("refuse", "input_error")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise EvalError(f"{where}: '{k}' must be true or false")
    if (flags["refuse"] or flags["input_error"]) and (evidence or sources or norm):
        raise EvalError(f"{where}: a refuse or input_error case has no sources, facts or evidence")
    return Case(name, question, tuple(history), tuple(sources), tuple(norm), tuple(evidence),
                flags["refuse"], flags["input_error"], str(path))


def locate_evidence(cases: Sequence[Case], doc_texts: dict[str, str]) -> dict[str, Span]:
    """Where each case's evidence sits in the corpus.

    Raises:
        EvalError: a passage does not occur exactly once in the corpus, naming the file and case.
    """
    spans: dict[str, Span] = {}
    for case in cases:
        for quote in case.evidence:
            found = [(d, m.start()) for d, text in doc_texts.items() for m in re.finditer(re.escape(quote), text)]
            if len(found) != 1:
                where = ", ".join(sorted({d for d, _ in found})) or "nowhere"
                raise EvalError(f"{case.file}: case {case.id!r}: evidence {quote!r} occurs {len(found)} times in "
                                f"the corpus ({where}); it must occur exactly once: quote a longer passage")
            doc_id, start = found[0]
            spans[quote] = Span(doc_id, start, start + len(quote))
    return spans


def fact_found(fact: str, text: str) -> bool:
    """Does `fact` occur in `text` as whole words and numbers ("25" does not match "2025"), ignoring case?"""
    return re.search(rf"(?<![\w.,]){re.escape(fact)}(?![\w]|[.,]\d)", text, re.I) is not None


def check_case(case: Case, answer: Answer, doc_texts: dict[str, str], spans: dict[str, Span] | None = None,
               status: str = "") -> CaseResult:
    """Apply the case's checks to an answer; each failed check adds a reason."""
    spans = spans or {}
    status = status or ("refused" if answer.refused else "answered")
    reasons: list[str] = []
    cited = list(dict.fromkeys(s.doc_id for s in answer.sources))
    gold_spans = [spans[q] for q in case.evidence if q in spans]
    gold = [any(g.doc_id == s.doc_id and g.start < s.end and s.start < g.end for g in gold_spans)
            for s in answer.sources]
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
            reasons.append("answered a refuse case")
        if answer.sources:
            reasons.append(f"cited sources on a refuse case ({', '.join(cited)})")
    else:
        if answer.refused:
            reasons.append("refused an in-scope question")
        else:
            if gold_spans and not any(gold):
                reasons.append("no answer sentence holds the gold evidence")
            if case.sources and not set(case.sources) & set(cited):
                exp = " or ".join(case.sources)
                reasons.append(f"expected source {exp} not cited (cited: {', '.join(cited) or 'none'})")
        for fact in case.facts:
            if any(fact_found(f, answer.text) for f in fact):
                found += 1
            elif not answer.refused:
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
        kept=len(_CITED_RUN.findall(answer.text)) if answer.mode == "generated" else 0,
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
    """
    doc_texts = {d: assistant.document(d).text for d in assistant.doc_ids()}
    spans = locate_evidence(cases, doc_texts)
    results = []
    for case in cases:
        t0 = time.perf_counter()
        status = ""
        try:
            answer = assistant.ask(case.question, list(case.history))
            status = "unavailable" if answer.unavailable else ""
        except InputError as exc:
            answer = Answer(case.question, str(exc), (), True, {"total": (time.perf_counter() - t0) * 1000})
            status = "input_error"
        results.append(check_case(case, answer, doc_texts, spans, status))
        if progress:
            progress(case)
    return results


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


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
    answered_gold = [r for r in gold if not r.refused]

    def rank(r: CaseResult) -> int | None:
        docs = list(dict.fromkeys(r.retrieved_doc_ids))
        hits = [i for i, d in enumerate(docs) if d in r.expected_sources]
        return hits[0] + 1 if hits else None

    def share(items: Sequence[Any], pred: Any) -> float:
        return round(sum(1 for x in items if pred(x)) / len(items), 4) if items else 0.0

    def wrong(r: CaseResult) -> bool:
        return (r.refuse and not r.refused) or (r.in_scope and r.has_evidence and not r.refused and not any(r.gold))

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
        "wrong_answer_rate": share(inscope + refuse, wrong),
        "false_refusal_rate": share(inscope, lambda r: r.refused),
        "refusal_accuracy": share(refuse, lambda r: r.refused),
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
        "latency_ms_p95": round(percentile(lat, 0.95), 2),
        **generation,
    }


def report(results: Sequence[CaseResult], **extra: Any) -> dict[str, Any]:
    """The machine-readable report written by `eval --json`."""
    keys = ("id", "passed", "status", "reasons", "question", "answer", "refused", "sources", "gold",
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


def reindex_gate(settings: Any, cases_path: Path) -> Any:
    """A gate for `build_index`: the new version may not pass fewer cases than the active one.

    `cases_path` is a cases file or a folder of them (the project gates on every split).
    """
    from . import store
    from .answer import Assistant

    def gate(version: str) -> tuple[bool, str]:
        try:
            active = store.read_pointer(store.connect(settings)).version
        except Exception:
            return True, "no active version to compare with"
        cases = load_cases([cases_path])
        old = run_cases(Assistant(settings, version=active, check_selector=False), cases)
        try:
            new = run_cases(Assistant(settings, version=version, check_selector=False), cases)
        except EvalError as exc:
            return False, f"the eval gate kept the active version: {exc}. Fix the case or the corpus, or rerun with --force."
        before, after = metrics(old)["pass_rate"], metrics(new)["pass_rate"]
        broke = [n.id for o, n in zip(old, new, strict=True) if o.passed and not n.passed]
        if after < before:
            return False, (f"the eval gate kept the active version: pass_rate would fall from {before} to {after}; "
                           f"broken cases: {', '.join(broke)}. Fix the corpus, or rerun with --force.")
        return True, f"eval gate passed: pass_rate {before} -> {after}"

    return gate
