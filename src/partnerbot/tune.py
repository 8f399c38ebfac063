"""`partnerbot tune`: fit the answer selector and calibrate refusal on the train split only.

1. Every train case runs through the serving path (`Assistant.prepare`) to get its candidate
   sentences and their features; a candidate is labelled 1 when it holds the case's gold evidence.
2. A scikit-learn logistic regression (standardised features) is fitted. Its regularisation is
   chosen, and its refusal thresholds calibrated, on out-of-fold predictions from k-fold
   cross-validation grouped by case, so no case scores its own training rows.
3. The answer threshold is the lowest that keeps the cross-validated wrong-answer rate at or below
   the target; the extra-sentence threshold is the lowest at which added sentences are gold at
   least `target_precision` of the time.
4. The final model is fitted on every train case and written with its thresholds and figures.

Everything is seeded, so the same cases, index and seed give the same artifact (and id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .answer import Assistant, clean_history, clean_question
from .errors import PartnerbotError
from .evals import Case, Span, load_cases, locate_evidence
from .features import FEATURES
from .language import foreign_reply
from .refusal import choose
from .selector import Selector, Thresholds, write_selector
from .settings import Settings
from .version import Version

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
MIN_EXTRA_SUPPORT = 5  # added sentences needed on the train folds before the extra threshold is trusted


@dataclass
class Rows:
    """The candidates of every usable train case: features, labels and the case each row belongs to."""

    matrix: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sentences: list[tuple[int, ...]]  # per case: candidate sentence indices
    refuse: np.ndarray  # per case
    cases: list[str]


@dataclass(frozen=True)
class TuneReport:
    """What `partnerbot tune` did: the artifact and its cross-validated figures."""

    path: Path
    selector_id: str
    cases: int
    rows: int
    c: float
    figures: dict[str, float]


def gold_sentences(state: Version, sentences: Sequence[int], spans: Sequence[Span]) -> np.ndarray:
    """1 for each candidate sentence that overlaps a gold evidence span, else 0."""
    out = np.zeros(len(sentences), dtype=np.int64)
    for j, i in enumerate(sentences):
        s = state.sentences[i]
        out[j] = any(g.doc_id == s.doc_id and g.start < s.end and s.start < g.end for g in spans)
    return out


def collect_rows(assistant: Assistant, cases: Sequence[Case]) -> tuple[Rows, Version]:
    """Run each in-scope case with evidence, and each refuse case, through the serving path."""
    state = assistant._current()
    spans = locate_evidence(cases, {d: doc.text for d, doc in state.docs.items()})
    mats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    sentences: list[tuple[int, ...]] = []
    refuse: list[bool] = []
    ids: list[str] = []
    limit = assistant.settings.max_question_chars
    for case in cases:
        if case.input_error or (case.in_scope and not case.evidence):
            continue
        question = clean_question(case.question, limit)
        if foreign_reply(question, state.normalizer.vocabulary) is not None:
            continue
        prepared = assistant.prepare(question, clean_history(list(case.history), limit))
        cands = prepared.candidates
        y = (np.zeros(len(cands.sentences), dtype=np.int64) if case.refuse
             else gold_sentences(state, cands.sentences, [spans[q] for q in case.evidence]))
        mats.append(cands.matrix)
        labels.append(y)
        groups.append(np.full(len(y), len(ids)))
        sentences.append(cands.sentences)
        refuse.append(case.refuse)
        ids.append(case.id)
    rows = Rows(np.vstack(mats), np.concatenate(labels), np.concatenate(groups), sentences,
                np.asarray(refuse), ids)
    return rows, state


def _fit(matrix: np.ndarray, labels: np.ndarray, c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
    return model.fit(matrix, labels)


def out_of_fold(rows: Rows, c: float, folds: int, seed: int) -> np.ndarray:
    """Each row's probability from a model that never saw its case."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(rows.labels))
    for train, held in GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            rows.matrix, rows.labels, rows.groups):
        model = _fit(rows.matrix[train], rows.labels[train], c, seed)
        oof[held] = model.predict_proba(rows.matrix[held])[:, 1]
    return oof


def _per_case(rows: Rows, probability: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(probability[rows.groups == g], rows.labels[rows.groups == g]) for g in range(len(rows.cases))]


def answer_threshold(rows: Rows, probability: np.ndarray, target_wrong: float) -> float:
    """The lowest threshold whose wrong-answer rate (over all cases) stays at or below `target_wrong`."""
    best, top_gold = [], []
    for p, y in _per_case(rows, probability):
        k = int(np.argmax(p)) if len(p) else -1
        best.append(float(p[k]) if k >= 0 else 0.0)
        top_gold.append(bool(k >= 0 and y[k]))
    best_a, good = np.asarray(best), np.asarray(top_gold) & ~rows.refuse
    for t in sorted(set(best_a)):
        if np.sum((best_a >= t) & ~good) / len(best_a) <= target_wrong:
            return float(t)
    return 1.0


def extra_threshold(state: Version, rows: Rows, probability: np.ndarray, answer: float,
                    target_precision: float, max_sentences: int) -> float:
    """The lowest threshold (at or above `answer`) at which added sentences are gold often enough."""
    per_case = _per_case(rows, probability)
    for t in sorted({float(x) for x in probability if x >= answer}):
        added = gold = 0
        for (p, y), sents in zip(per_case, rows.sentences, strict=True):
            picked = choose(state, sents, p, Thresholds(answer, t), max_sentences)
            index = {s: j for j, s in enumerate(sents)}
            for s, _ in picked[1:]:
                added += 1
                gold += int(y[index[s]])
        if added < MIN_EXTRA_SUPPORT:
            return 1.0
        if gold / added >= target_precision:
            return t
    return 1.0


def figures(state: Version, rows: Rows, probability: np.ndarray, thresholds: Thresholds,
            max_sentences: int) -> dict[str, float]:
    """Case-level figures of a set of predictions at the given thresholds (the eval metrics' definitions)."""
    inscope = answered = hit1 = wrong = refused_ok = sentences = gold = 0
    for (p, y), sents, refuse in zip(_per_case(rows, probability), rows.sentences, rows.refuse, strict=True):
        picked = choose(state, sents, p, thresholds, max_sentences)
        index = {s: j for j, s in enumerate(sents)}
        flags = [bool(y[index[s]]) for s, _ in picked]
        if refuse:
            refused_ok += not picked
            wrong += bool(picked)
            continue
        inscope += 1
        answered += bool(picked)
        hit1 += bool(flags and flags[0])
        wrong += bool(picked) and not any(flags)
        sentences += len(flags)
        gold += sum(flags)
    n_refuse = int(rows.refuse.sum())
    return {
        "evidence_hit@1": round(hit1 / max(inscope, 1), 4),
        "wrong_answer_rate": round(wrong / max(len(rows.cases), 1), 4),
        "false_refusal_rate": round((inscope - answered) / max(inscope, 1), 4),
        "refusal_accuracy": round(refused_ok / max(n_refuse, 1), 4),
        "answer_precision": round(gold / max(sentences, 1), 4),
    }


def tune(settings: Settings, cases_path: Path, *, seed: int = 13, folds: int = 5, target_wrong: float = 0.02,
         target_precision: float = 0.9, out: Path | None = None) -> TuneReport:
    """Fit the selector on `cases_path` (the train split) and write the artifact.

    Args:
        settings: the settings; the active index version supplies candidates and features.
        cases_path: the train cases (a file or folder). Never the test split.
        seed: seeds the folds and the model.
        folds: k of the k-fold cross-validation.
        target_wrong: the cross-validated wrong-answer rate the answer threshold is set for.
        target_precision: the share of added sentences that must be gold.
        out: where to write the artifact (default `settings.selector_path`).

    Raises:
        PartnerbotError: no usable cases; EvalError: invalid cases or evidence.
    """
    from sklearn.metrics import roc_auc_score

    assistant = Assistant(settings, check_selector=False)
    cases = load_cases([cases_path], assistant.doc_ids())
    rows, state = collect_rows(assistant, cases)
    if rows.labels.sum() == 0 or len(rows.cases) < folds:
        raise PartnerbotError(f"{cases_path}: too few usable cases with gold evidence to fit the selector")
    scored: dict[float, tuple[float, np.ndarray]] = {}
    for c in C_GRID:
        oof = out_of_fold(rows, c, folds, seed)
        t = answer_threshold(rows, oof, target_wrong)
        f = figures(state, rows, oof, Thresholds(t, 1.0), settings.max_sentences)
        # The best C answers the most in-scope cases correctly at the calibrated wrong-answer rate.
        scored[c] = (f["evidence_hit@1"], oof)
    c = max(C_GRID, key=lambda k: (scored[k][0], -k))
    oof = scored[c][1]
    answer = answer_threshold(rows, oof, target_wrong)
    extra = extra_threshold(state, rows, oof, answer, target_precision, settings.max_sentences)
    thresholds = Thresholds(answer, extra)
    cv = figures(state, rows, oof, thresholds, settings.max_sentences)
    cv["auc"] = round(float(roc_auc_score(rows.labels, oof)), 4)
    model = _fit(rows.matrix, rows.labels, c, seed)
    scaler, lr = model.steps[0][1], model.steps[1][1]
    fitted = {
        "cases": len(rows.cases), "rows": len(rows.labels), "positives": int(rows.labels.sum()), "seed": seed,
        "folds": folds, "C": c, "target_wrong_rate": target_wrong, "target_extra_precision": target_precision,
        "embed_model": settings.model_name, "cross_validated": cv,
    }
    selector = Selector(FEATURES, scaler.mean_, scaler.scale_, lr.coef_[0], float(lr.intercept_[0]), thresholds,
                        fitted)
    path = out or settings.selector_path
    selector_id = write_selector(selector, path)
    return TuneReport(path, selector_id, len(rows.cases), len(rows.labels), c, cv)
