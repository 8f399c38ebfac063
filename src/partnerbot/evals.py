"""The staff evaluation harness: cases in YAML, small checks, metrics, comparisons and gates."""

from __future__ import annotations

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

CASE_KEYS = {"id", "question", "history", "sources", "facts", "refuse"}


@dataclass(frozen=True)
class Case:
    """One evaluation case (the fixed YAML format)."""

    id: str
    question: str
    history: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    facts: tuple[tuple[str, ...], ...] = ()
    refuse: bool = False
    file: str = ""


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


def load_cases(paths: Sequence[Path], doc_ids: Iterable[str] | None = None) -> list[Case]:
    """Read and validate case files.

    Raises:
        EvalError: unknown keys, a missing question, duplicate ids or unknown doc ids,
            naming the file and the case.
    """
    known = set(doc_ids) if doc_ids is not None else None
    cases: list[Case] = []
    for path in paths:
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
        seen: set[str] = set()
        for n, item in enumerate(raw, 1):
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
            if name in seen:
                raise EvalError(f"{where}: duplicate id")
            seen.add(name)
            question = item.get("question")
            if not isinstance(question, str) or not question.strip():
                raise EvalError(f"{where}: missing 'question'")
            history = item.get("history") or []
            sources = item.get("sources") or []
            facts = item.get("facts") or []
            if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
                raise EvalError(f"{where}: 'history' must be a list of strings")
            if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
                raise EvalError(f"{where}: 'sources' must be a list of doc ids")
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
            refuse = item.get("refuse", False)
            if not isinstance(refuse, bool):
                raise EvalError(f"{where}: 'refuse' must be true or false")
            cases.append(Case(name, question, tuple(history), tuple(sources), tuple(norm), refuse, str(path)))
    return cases


def check_case(case: Case, answer: Answer, doc_texts: dict[str, str]) -> CaseResult:
    """Apply the case's checks to an answer; each failed check adds a reason."""
    reasons: list[str] = []
    cited = list(dict.fromkeys(s.doc_id for s in answer.sources))
    found = 0
    if case.refuse:
        if not answer.refused:
            reasons.append("answered a refuse case")
        if answer.sources:
            reasons.append(f"cited sources on a refuse case ({', '.join(cited)})")
    else:
        if answer.refused:
            reasons.append("refused an in-scope question")
        if case.sources and not set(case.sources) & set(cited):
            exp = " or ".join(case.sources)
            reasons.append(f"expected source {exp} not cited (cited: {', '.join(cited) or 'none'})")
        lowered = answer.text.lower()
        for fact in case.facts:
            if any(f.lower() in lowered for f in fact):
                found += 1
            else:
                reasons.append(f"fact {' or '.join(repr(f) for f in fact)} missing")
    valid = citations_valid(answer, doc_texts)
    if not valid:
        reasons.append("invalid citations: a [n] without a source, an uncited source, or a quote not verbatim")
    return CaseResult(
        id=case.id, passed=not reasons, reasons=reasons, question=case.question, answer=answer.text,
        refused=answer.refused, sources=[s.to_dict() for s in answer.sources],
        retrieved_doc_ids=list(answer.retrieved_doc_ids), latency_ms=round(answer.timings_ms.get("total", 0.0), 2),
        file=case.file, expected_sources=list(case.sources), facts_found=found, facts_total=len(case.facts),
        refuse=case.refuse, citations_valid=valid,
    )


def citations_valid(answer: Answer, doc_texts: dict[str, str]) -> bool:
    """Every `[n]` has source n, sources are 1..N all cited, and quotes sit verbatim at their offsets."""
    cited = {int(m) for m in CITATION_RE.findall(answer.text)} if not answer.refused else set()
    numbers = [s.n for s in answer.sources]
    if numbers != list(range(1, len(numbers) + 1)) or cited != set(numbers):
        return False
    return all(doc_texts.get(s.doc_id, "")[s.start : s.end] == s.quote for s in answer.sources)


def run_cases(assistant: Any, cases: Sequence[Case], progress: Any = None) -> list[CaseResult]:
    """Run every case through `Assistant.ask` and check it."""
    results = []
    doc_texts: dict[str, str] = {}
    for case in cases:
        t0 = time.perf_counter()
        try:
            answer = assistant.ask(case.question, list(case.history))
        except InputError as exc:  # e.g. an over-long question: refused with a message, nothing searched
            answer = Answer(case.question, str(exc), (), True, {"total": (time.perf_counter() - t0) * 1000})
        for s in answer.sources:
            if s.doc_id not in doc_texts:
                doc = assistant.document(s.doc_id)
                doc_texts[s.doc_id] = doc.text if doc else ""
        results.append(check_case(case, answer, doc_texts))
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
    """The aggregate figures; see the README for their definitions."""
    inscope = [r for r in results if not r.refuse]
    ranked = [r for r in inscope if r.expected_sources]
    refuse = [r for r in results if r.refuse]

    def rank(r: CaseResult) -> int | None:
        docs = list(dict.fromkeys(r.retrieved_doc_ids))
        hits = [i for i, d in enumerate(docs) if d in r.expected_sources]
        return hits[0] + 1 if hits else None

    def share(items: Sequence[Any], pred: Any) -> float:
        return round(sum(1 for x in items if pred(x)) / len(items), 4) if items else 0.0

    facts_total = sum(r.facts_total for r in inscope)
    lat = [r.latency_ms for r in results]
    return {
        "cases": len(results),
        "hit@1": share(ranked, lambda r: (rank(r) or 99) <= 1),
        "hit@3": share(ranked, lambda r: (rank(r) or 99) <= 3),
        "hit@5": share(ranked, lambda r: (rank(r) or 99) <= 5),
        "mrr": round(sum(1 / rk for r in ranked if (rk := rank(r))) / len(ranked), 4) if ranked else 0.0,
        "citation_hit": share(ranked, lambda r: bool({s["doc_id"] for s in r.sources} & set(r.expected_sources))),
        "fact_recall": round(sum(r.facts_found for r in inscope) / facts_total, 4) if facts_total else 0.0,
        "refusal_accuracy": share(refuse, lambda r: r.refused),
        "false_refusal_rate": share(inscope, lambda r: r.refused),
        "citation_validity": share(results, lambda r: r.citations_valid),
        "pass_rate": share(results, lambda r: r.passed),
        "latency_ms_p50": round(statistics.median(lat), 2) if lat else 0.0,
        "latency_ms_p95": round(percentile(lat, 0.95), 2),
    }


def report(results: Sequence[CaseResult], **extra: Any) -> dict[str, Any]:
    """The machine-readable report written by `eval --json`."""
    keys = ("id", "passed", "reasons", "question", "answer", "refused", "sources", "retrieved_doc_ids", "latency_ms")
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
    """A gate for `build_index`: the new version may not pass fewer cases than the active one."""
    from . import store
    from .answer import Assistant

    def gate(version: str) -> tuple[bool, str]:
        try:
            active = store.read_pointer(store.connect(settings)).version
        except Exception:
            return True, "no active version to compare with"
        cases = load_cases([cases_path])
        old = run_cases(Assistant(settings, version=active), cases)
        new = run_cases(Assistant(settings, version=version), cases)
        before, after = metrics(old)["pass_rate"], metrics(new)["pass_rate"]
        broke = [n.id for o, n in zip(old, new, strict=True) if o.passed and not n.passed]
        if after < before:
            return False, (f"the eval gate kept the active version: pass_rate would fall from {before} to {after}; "
                           f"broken cases: {', '.join(broke)}. Fix the corpus, or rerun with --force.")
        return True, f"eval gate passed: pass_rate {before} -> {after}"

    return gate
