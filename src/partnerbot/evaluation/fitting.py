"""Fitting the reader for `partnerbot tune`, on cross-fitted rows only: the selector, the scope model, the
thresholds, and the cross-validated figures they give.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from partnerbot.answering.reader.model import Linear, Thresholds
from partnerbot.answering.reader.policy import choose, decide
from partnerbot.answering.reader.scope import scope_row
from partnerbot.evaluation.crossfit import Item
from partnerbot.index.read import IndexSnapshot

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
SCOPE_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
MIN_EXTRA_SUPPORT = 5  # added sentences needed on the train folds before the extra threshold is trusted


def fit_linear(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Linear:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit((x - scaler.mean_) / scale, y)
    return Linear(scaler.mean_, scale, lr.coef_[0], float(lr.intercept_[0]))


def group_folds(n_groups: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed + 1).permutation(n_groups)
    return [np.sort(order[k::folds]) for k in range(folds)]


def selector_oof(items: Sequence[Item], c: float, folds: int, seed: int) -> list[np.ndarray]:
    """Each item's candidate probabilities from a selector fitted without its case (on cross-fitted rows)."""
    out: list[np.ndarray] = [np.zeros(0)] * len(items)
    for held in group_folds(len(items), folds, seed):
        held_set = set(held.tolist())
        train = [it for i, it in enumerate(items) if i not in held_set and len(it.labels)]
        model = fit_linear(np.vstack([it.oof_matrix for it in train]), np.concatenate([it.labels for it in train]),
                            c, seed)
        for i in held:
            if len(items[i].labels):
                out[i] = model.probability(items[i].oof_matrix)
    return out


def top1(items: Sequence[Item], probs: Sequence[np.ndarray]) -> float:
    """The share of in-scope items whose most probable candidate is gold."""
    inscope = [(it, p) for it, p in zip(items, probs, strict=True) if not it.refuse]
    return sum(bool(len(p) and it.labels[int(np.argmax(p))]) for it, p in inscope) / max(len(inscope), 1)


def scope_rows(items: Sequence[Item], probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.vstack([scope_row(it.oof_vector, it.oof_matrix, p) for it, p in zip(items, probs, strict=True)])


def scope_oof(x: np.ndarray, y: np.ndarray, c: float, folds: int, seed: int) -> np.ndarray:
    out = np.zeros(len(y))
    for held in group_folds(len(y), folds, seed + 7):
        mask = np.ones(len(y), dtype=bool)
        mask[held] = False
        out[held] = fit_linear(x[mask], y[mask], c, seed).probability(x[held])
    return out


def scope_threshold(scope: np.ndarray, inscope: np.ndarray, target_false_refusal: float) -> float:
    """The highest threshold that still keeps at least 1 - `target_false_refusal` of the in-scope cases."""
    kept = np.sort(scope[inscope])
    k = int(np.floor(target_false_refusal * len(kept)))
    return float(kept[min(k, len(kept) - 1)]) if len(kept) else 0.0


def answer_threshold(items: Sequence[Item], probs: Sequence[np.ndarray], scope: np.ndarray, t_scope: float,
                     target_wrong: float) -> float:
    """The lowest threshold whose confident wrong answers (in-scope with a wrong first sentence, or any
    answer to a refuse case) stay at or below `target_wrong` of all cases."""
    best, bad = [], []
    for it, p, s in zip(items, probs, scope, strict=True):
        if not len(p) or s < t_scope or not it.query.topical:  # never answered with confidence
            continue
        k = int(np.argmax(p))
        best.append(float(p[k]))
        bad.append(it.refuse or not it.labels[k])
    best_a, bad_a = np.asarray(best), np.asarray(bad, dtype=bool)
    for t in sorted(set(best)):
        if np.sum((best_a >= t) & bad_a) / len(items) <= target_wrong:
            return float(t)
    return 1.0


def extra_threshold(state: IndexSnapshot, items: Sequence[Item], probs: Sequence[np.ndarray], answer: float,
                    target_precision: float, max_sentences: int) -> float:
    """The lowest threshold (at or above `answer`) at which added sentences are gold often enough."""
    candidates = sorted({float(x) for p in probs for x in p if x >= answer})
    for t in candidates:
        added = gold = 0
        for it, p in zip(items, probs, strict=True):
            picked = choose(state, it.sentences, p, Thresholds(answer, t), max_sentences)
            for s, _ in picked[1:]:
                added += 1
                gold += int(s in it.gold)
        if added < MIN_EXTRA_SUPPORT:
            return 1.0
        if gold / added >= target_precision:
            return t
    return 1.0


def figures(state: IndexSnapshot, items: Sequence[Item], probs: Sequence[np.ndarray], scope: np.ndarray,
            thresholds: Thresholds, max_sentences: int) -> dict[str, float]:
    """Case-level figures of out-of-fold predictions at the given thresholds (the eval metrics' definitions)."""
    inscope = [i for i, it in enumerate(items) if not it.refuse]
    refuse = [i for i, it in enumerate(items) if it.refuse]
    counts = {"answered_gold": 0, "helpful": 0, "wrong": 0, "declined_in": 0, "declined_refuse": 0, "uncertain": 0}
    for i, (it, p) in enumerate(zip(items, probs, strict=True)):
        d = decide(state, it.sentences, p, float(scope[i]), thresholds, max_sentences, it.query.topical)
        shown = [s for s, _ in d.picked]
        if it.refuse:
            counts["declined_refuse"] += d.outcome == "declined"
            counts["wrong"] += bool(shown)
            continue
        first_gold = bool(shown) and shown[0] in it.gold
        counts["declined_in"] += d.outcome == "declined"
        counts["uncertain"] += d.outcome == "uncertain"
        if d.outcome == "answered":
            counts["answered_gold"] += first_gold
            counts["helpful"] += first_gold
            counts["wrong"] += not first_gold
        elif d.outcome == "uncertain":
            counts["helpful"] += any(s in it.gold for s in shown)
    n_in, n_ref = max(len(inscope), 1), max(len(refuse), 1)
    return {
        "helpful_rate": round(counts["helpful"] / n_in, 4),
        "answer_accuracy": round(counts["answered_gold"] / n_in, 4),
        "wrong_answer_rate": round(counts["wrong"] / max(len(items), 1), 4),
        "uncertain_rate": round(counts["uncertain"] / n_in, 4),
        "false_refusal_rate": round(counts["declined_in"] / n_in, 4),
        "refusal_accuracy": round(counts["declined_refuse"] / n_ref, 4),
    }
