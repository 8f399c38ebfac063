"""Cross-fitting for `partnerbot tune`: each train case's features from an embedding model that never saw it.

The cases are split into folds; for each fold the base model is fine-tuned on the other folds' triplets
(`finetune.train`), and the held-out questions and every sentence are embedded with it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partnerbot.answering.reader.features import FEATURES, Query, featurize
from partnerbot.artifact import weights_sha256_cached
from partnerbot.corpus.chunk import sentence_context
from partnerbot.evaluation import finetune
from partnerbot.evaluation.cases import Case
from partnerbot.index.read import IndexSnapshot
from partnerbot.types import Hit

_DENSE = FEATURES.index("dense")


@dataclass
class Item:
    """One usable train case made ready: what retrieval found for it and which sentences answer it."""

    case: Case
    query: Query
    hits: list[Hit]
    sentences: tuple[int, ...]
    matrix: np.ndarray
    labels: np.ndarray
    gold: tuple[int, ...]
    fold: int = 0
    oof_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURES))))
    oof_vector: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def refuse(self) -> bool:
        return self.case.refuse


def contexts(state: IndexSnapshot) -> list[str]:
    """Every sentence as the index embeds it (after its document's title and section heading)."""
    return [sentence_context(state.docs[s.doc_id].title, s.section, s.text) for s in state.sentences]


def triplets(state: IndexSnapshot, items: Sequence[Item]) -> list[finetune.Triplet]:
    """(retrieval query, gold sentence in context, hardest wrong candidate in context) for each gold sentence.

    The hard negative is the candidate the index's model ranks highest that is not gold.
    """
    texts = contexts(state)
    out: list[finetune.Triplet] = []
    for it in items:
        if it.refuse or not it.gold:
            continue
        wrong = [j for j in np.argsort(-it.matrix[:, _DENSE], kind="stable") if not it.labels[j]] if len(it.labels) else []
        if not wrong:
            continue
        negative = texts[it.sentences[int(wrong[0])]]
        out.extend(finetune.Triplet(it.query.retrieval_query, texts[g], negative) for g in it.gold)
    return out


def encode(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, as serving computes them."""
    return np.asarray(model.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False), dtype=np.float32)


def assign_folds(items: Sequence[Item], folds: int, seed: int) -> None:
    """Split the cases into `folds` groups at random (seeded); a follow-up and its case fall where they fall."""
    order = np.random.default_rng(seed).permutation(len(items))
    for rank, i in enumerate(order):
        items[int(i)].fold = rank % folds


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cross_fit(state: IndexSnapshot, items: Sequence[Item], base: str, config: finetune.TrainConfig, folds: int,
              cache_dir: Path | None, log: Callable[[str], None]) -> None:
    """Give every item its out-of-fold features and question vector (see the module's step 2).

    The fold models' vectors are cached in `cache_dir`, keyed by everything they depend on, so refitting
    the reader alone takes seconds.
    """
    texts = contexts(state)
    plans = [triplets(state, [it for it in items if it.fold != k]) for k in range(folds)]
    key = cache_key(weights_sha256_cached(Path(base)), config, folds, texts, [[it.query.retrieval_query, it.fold] for it in items],
               [[(t.anchor, t.positive, t.negative) for t in plan] for plan in plans])
    cached = cache_dir / f"cross-fit-{key}.npz" if cache_dir else None
    if cached is not None and cached.exists():
        with np.load(cached) as npz:
            sentence_vecs, question_vecs = npz["sentences"], npz["questions"]
        log(f"cross-fitted vectors reused from {cached}")
    else:
        svs, qvs = [], []
        for k in range(folds):
            t0 = time.perf_counter()
            model = finetune.train(base, plans[k], config)
            svs.append(encode(model, texts))
            qvs.append(encode(model, [it.query.retrieval_query for it in items]))
            log(f"fold {k + 1}/{folds}: tuned on {len(plans[k])} triplets and encoded in {finetune.elapsed(t0)} s")
        sentence_vecs, question_vecs = np.stack(svs), np.stack(qvs)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, sentences=sentence_vecs, questions=question_vecs)
    for i, it in enumerate(items):
        qv = question_vecs[it.fold, i]
        it.oof_matrix = featurize(state, Query(it.query.question, it.query.retrieval_query, qv), it.hits,
                                  sentence_vecs[it.fold]).matrix
        it.oof_vector = qv
