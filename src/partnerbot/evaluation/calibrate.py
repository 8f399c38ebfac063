"""`partnerbot calibrate`: the similarity threshold for generated sentences, from the train split only.

A generated sentence restates the sentence it cites, in the terms of the question. Each in-scope train
case with gold evidence and facts gives a stand-in for such a sentence: its question followed by its
expected facts. Through the serving path (`Assistant.prepare`) each case gives two pairs:

- a positive: the stand-in and the candidate sentence holding the gold evidence that is nearest to it;
- a negative: the stand-in and the nearest retrieved candidate from a document that holds none of the
  gold evidence: a sentence retrieved for the question (so on a neighbouring topic) that cannot
  support the answer. (Non-gold sentences of the gold document are left out: many of them elaborate
  the gold sentence and would support a faithful restatement.)

The threshold maximises Youden's J (true-positive rate minus false-positive rate) on scikit-learn's ROC
curve over those pairs, and is written with its figures to `models/verify.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from partnerbot.answering.assistant import Assistant
from partnerbot.answering.verify import Verifier, write_verifier
from partnerbot.errors import PartnerbotError
from partnerbot.evaluation.cases import Case, load_cases, prepare_case
from partnerbot.evaluation.evidence import gold_sentences, locate_evidence
from partnerbot.index.embed import embed_texts
from partnerbot.settings import Settings


@dataclass(frozen=True)
class Pairs:
    """Cosine similarities of the positive and negative pairs."""

    positive: np.ndarray
    negative: np.ndarray


def stand_in(case: Case) -> str:
    """A stand-in for a generated answer sentence: the question, then the first form of each expected fact."""
    return f"{case.question.rstrip(' ?')} {' '.join(f[0] for f in case.facts)}".strip()


def collect_pairs(assistant: Assistant, cases: Sequence[Case]) -> Pairs:
    """The positive and negative similarities of every usable in-scope train case."""
    state = assistant.snapshots.current()
    spans = locate_evidence(cases, {d: doc.text for d, doc in state.docs.items()})
    usable = [c for c in cases if c.in_scope and c.evidence and c.facts]
    vecs = embed_texts(assistant.settings, [stand_in(c) for c in usable])
    pos: list[float] = []
    neg: list[float] = []
    for case, vec in zip(usable, vecs, strict=True):
        prepared = prepare_case(assistant, case)
        if prepared is None:  # not English: the serving path declines it without retrieving
            continue
        idx = np.asarray(prepared.candidates.sentences, dtype=np.int64)
        if not len(idx):
            continue
        gold_spans = [spans[q] for q in case.evidence]
        answering = set(gold_sentences(state, gold_spans))
        gold = np.asarray([i in answering for i in idx.tolist()], dtype=bool)
        gold_docs = {g.doc_id for g in gold_spans}
        elsewhere = np.asarray([state.sentences[i].doc_id not in gold_docs for i in idx])
        if not gold.any() or not elsewhere.any():
            continue
        sims = state.sentence_vecs[idx] @ vec
        pos.append(float(sims[gold].max()))
        neg.append(float(sims[elsewhere].max()))
    return Pairs(np.asarray(pos), np.asarray(neg))


def youden_threshold(pairs: Pairs) -> tuple[float, dict[str, float]]:
    """The ROC threshold maximising TPR - FPR, and the share of positives kept and negatives rejected at it."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.concatenate([np.ones(len(pairs.positive)), np.zeros(len(pairs.negative))])
    s = np.concatenate([pairs.positive, pairs.negative])
    fpr, tpr, thresholds = roc_curve(y, s)
    k = int(np.argmax(tpr - fpr))
    threshold = float(thresholds[k])
    return threshold, {"pairs": len(pairs.positive), "positives_kept": round(float(tpr[k]), 4),
                       "negatives_rejected": round(float(1 - fpr[k]), 4), "auc": round(float(roc_auc_score(y, s)), 4)}


def calibrate(settings: Settings, cases_path: Path, out: Path | None = None) -> tuple[Path, Verifier]:
    """Calibrate the similarity threshold on `cases_path` (the train split) and write it.

    Raises:
        PartnerbotError: too few usable cases to calibrate on.
    """
    cases = load_cases([cases_path])
    pairs = collect_pairs(Assistant(settings), cases)
    if len(pairs.positive) < 20:
        raise PartnerbotError(f"{cases_path}: only {len(pairs.positive)} usable cases; at least 20 are needed")
    threshold, figures = youden_threshold(pairs)
    verifier = Verifier(threshold, calibrated_on=str(cases_path), figures=figures)
    path = out or settings.generation.verifier_path
    write_verifier(path, verifier)
    return path, verifier
