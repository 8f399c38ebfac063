"""`partnerbot tune`: fine-tune the embedding model and fit the reader, on the train split only.

1. Every usable train case runs through the serving path (`Assistant.prepare`) on an index of the corpus
   embedded with the base model (built and kept in `<data_dir>/tune-index`): its retrieved chunks,
   candidate sentences and features. A candidate is gold when it overlaps the case's
   evidence.
2. Cross-fitting. The cases are split into `folds` groups. For each, the embedding model is fine-tuned
   (`finetune.train`) on the other groups' (question, gold sentence, hardest wrong candidate) triplets,
   and the held-out questions' meaning features are computed with that model. So every train row carries
   a similarity from a model that never saw its question, as a new question from the public will.
3. The final embedding model is fine-tuned on every case and saved as the model artifact.
4. The sentence selector (a logistic regression over the features) is fitted on the cross-fitted rows;
   its regularisation is chosen by grouped k-fold cross-validation on top-1 accuracy.
5. The scope model (a logistic regression over the question's embedding and its best candidates'
   scores) is fitted on in-scope against refuse cases, from the selector's out-of-fold probabilities.
6. Thresholds, on out-of-fold predictions only: the scope threshold keeps at least
   1 - `target_false_refusal` of the in-scope cases; the answer threshold is the lowest whose confident
   wrong answers stay at or below `target_wrong` of all cases; the extra threshold is the lowest at which
   added sentences are gold at least `target_precision` of the time.

Steps 2 and 3 are in `crossfit`, steps 4 to 6 in `fitting`; this module runs them in order and writes the
artifacts. Everything is seeded, so the same cases, index and seed give the same artifacts (and ids).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from partnerbot.answering.assistant import Assistant
from partnerbot.answering.reader.features import FEATURES
from partnerbot.answering.reader.model import Selector, Thresholds, write_selector
from partnerbot.artifact import is_artifact, read_manifest, weights_sha256_cached
from partnerbot.errors import PartnerbotError
from partnerbot.evaluation import finetune
from partnerbot.evaluation.cases import Case, load_cases, prepare_case
from partnerbot.evaluation.crossfit import Item, assign_folds, cache_key, contexts, cross_fit, encode, triplets
from partnerbot.evaluation.evidence import gold_sentences, locate_evidence
from partnerbot.evaluation.fitting import (
    C_GRID,
    SCOPE_C_GRID,
    answer_threshold,
    extra_threshold,
    figures,
    fit_linear,
    scope_oof,
    scope_rows,
    scope_threshold,
    selector_oof,
    top1,
)
from partnerbot.index.build import build_index
from partnerbot.index.read import IndexSnapshot
from partnerbot.index.snapshots import IndexSnapshots
from partnerbot.settings import Settings


@dataclass(frozen=True)
class TuneReport:
    """What `partnerbot tune` did: the artifacts, their cross-validated figures and the time each step took."""

    path: Path
    model_dir: Path
    selector_id: str
    model_sha256: str
    cases: int
    rows: int
    triplets: int
    c: float
    scope_c: float
    thresholds: Thresholds
    figures: dict[str, float]
    seconds: dict[str, float]


def candidate_settings(settings: Settings) -> Settings:
    """Settings for the index `tune` reads candidates from: the corpus embedded with the base model, in a local
    folder of its own, so that what `tune` learns depends on the cases, the corpus and the seed, never on the
    model that serves today."""
    return settings.updated(data_dir=settings.data_dir / "tune-index", embed_model=settings.index.base_model_path,
                            chroma_url="")


def collect(assistant: Assistant, cases: Sequence[Case]) -> tuple[list[Item], IndexSnapshot]:
    """Each in-scope case with evidence, and each refuse case, through the serving path."""
    state = assistant.snapshots.current()
    spans = locate_evidence(cases, {d: doc.text for d, doc in state.docs.items()})
    items: list[Item] = []
    for case in cases:
        if case.input_error or (case.in_scope and not case.evidence):
            continue
        prepared = prepare_case(assistant, case)
        if prepared is None:  # not English: the serving path declines it without retrieving
            continue
        gold = () if case.refuse else gold_sentences(state, [spans[q] for q in case.evidence])
        cands = prepared.candidates
        labels = np.asarray([s in gold for s in cands.sentences], dtype=np.int64)
        items.append(Item(case, prepared.query, prepared.hits, cands.sentences, cands.matrix, labels, gold))
    return items, state


def tune(settings: Settings, cases_path: Path, *, seed: int = 13, folds: int = 3, epochs: int = 1,
         target_wrong: float = 0.02, target_false_refusal: float = 0.04, target_precision: float = 0.9,
         out: Path | None = None, model_out: Path | None = None, fp16: bool = True,
         log: Callable[[str], None] = lambda _: None) -> TuneReport:
    """Fine-tune the embedding model and fit the reader on `cases_path` (the train split); write both artifacts.

    Args:
        settings: the settings; the active index version supplies candidates and features.
        cases_path: the train cases (a file or folder). Never the test split.
        seed: seeds the folds, the fine-tuning and the models.
        folds: groups for cross-fitting the embedding model and for cross-validating the reader.
        epochs: fine-tuning epochs.
        target_wrong: the cross-validated confident-wrong rate the answer threshold is set for.
        target_false_refusal: the share of in-scope train cases the scope threshold may decline.
        target_precision: the share of added sentences that must be gold.
        out: where to write the reader artifact (default `settings.selector_path`).
        model_out: where to write the tuned embedding model (default `settings.tuned_model_dir`).
        fp16: store the model's weights in half precision.
        log: called with a line for each step.

    Raises:
        PartnerbotError: too few usable cases; EvalError: invalid cases or evidence.
    """
    from sklearn.metrics import roc_auc_score

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    base_settings = candidate_settings(settings)
    build_index(base_settings)
    assistant = Assistant(base_settings, snapshots=IndexSnapshots(base_settings, check_selector=False))
    cases = load_cases([cases_path], assistant.doc_ids())
    items, state = collect(assistant, cases)
    n_refuse = sum(it.refuse for it in items)
    if len(items) - n_refuse < folds or n_refuse < folds or not any(it.gold for it in items):
        raise PartnerbotError(f"{cases_path}: too few usable cases to tune: {len(items) - n_refuse} in scope with "
                              f"evidence and {n_refuse} refuse cases; each must be at least --folds ({folds})")
    seconds["collect"] = finetune.elapsed(t0)
    log(f"{len(items)} usable train cases ({n_refuse} refuse), candidates in {seconds['collect']} s")
    config = finetune.TrainConfig(epochs=epochs, seed=seed)
    base = settings.index.base_model_path
    assign_folds(items, folds, seed)
    t0 = time.perf_counter()
    cache = settings.data_dir / "tune-cache"
    cross_fit(state, items, base, config, folds, cache, log)
    seconds["cross_fit"] = finetune.elapsed(t0)

    t0 = time.perf_counter()
    pairs = triplets(state, items)
    model_dir = model_out or settings.index.tuned_model_dir
    training_key = cache_key(weights_sha256_cached(Path(base)), config, fp16,
                        [(t.anchor, t.positive, t.negative) for t in pairs])
    texts = contexts(state)
    if is_artifact(model_dir) and read_manifest(model_dir).get("training_key") == training_key:
        model = finetune.load_model(str(model_dir))  # the same pairs and recipe: the same weights
        sha = str(read_manifest(model_dir)["sha256"])
        log(f"embedding model {model_dir} was tuned on these very triplets: reused")
        fp16 = False
    else:
        model = finetune.train(base, pairs, config)
        info = {"base_model": "all-MiniLM-L6-v2", "seed": seed, "epochs": epochs, "triplets": len(pairs),
                "cases": len(items), "loss": "MultipleNegativesRankingLoss", "batch_size": config.batch_size,
                "learning_rate": config.learning_rate, "training_key": training_key}
        full = encode(model, texts)
        sha = finetune.save_artifact(model, model_dir, info, fp16=fp16)
    if fp16:  # what half precision changes: the stored model's sentence vectors against the trained ones
        stored = encode(finetune.load_model(str(model_dir)), texts)
        agree = float(np.mean(np.argmax(stored @ stored.T - 2 * np.eye(len(texts)), axis=1)
                              == np.argmax(full @ full.T - 2 * np.eye(len(texts)), axis=1)))
        log(f"fp16 weights: largest cosine change {float(np.max(1 - np.sum(stored * full, axis=1))):.2e}, "
            f"nearest-sentence agreement {agree:.4f}")
    seconds["final_model"] = finetune.elapsed(t0)
    log(f"embedding model tuned on {len(pairs)} triplets in {seconds['final_model']} s: {model_dir} ({sha[:12]})")

    t0 = time.perf_counter()
    scored = {c: selector_oof(items, c, folds, seed) for c in C_GRID}
    c = max(C_GRID, key=lambda k: (round(top1(items, scored[k]), 4), -k))
    probs = scored[c]
    y_scope = np.asarray([not it.refuse for it in items], dtype=np.int64)
    x_scope = scope_rows(items, probs)
    scope_scored = {k: scope_oof(x_scope, y_scope, k, folds, seed) for k in SCOPE_C_GRID}
    scope_c = max(SCOPE_C_GRID, key=lambda k: (round(float(roc_auc_score(y_scope, scope_scored[k])), 4), -k))
    scope = scope_scored[scope_c]
    t_scope = scope_threshold(scope, y_scope.astype(bool), target_false_refusal)
    answer = answer_threshold(items, probs, scope, t_scope, target_wrong)
    extra = extra_threshold(state, items, probs, answer, target_precision, settings.answering.max_sentences)
    thresholds = Thresholds(answer, extra, t_scope)
    cv = figures(state, items, probs, scope, thresholds, settings.answering.max_sentences)
    cv["top1"] = round(top1(items, probs), 4)
    cv["scope_auc"] = round(float(roc_auc_score(y_scope, scope)), 4)

    rows = [it for it in items if len(it.labels)]
    sentence = fit_linear(np.vstack([it.oof_matrix for it in rows]), np.concatenate([it.labels for it in rows]),
                           c, seed)
    scope_model = fit_linear(x_scope, y_scope, scope_c, seed)
    seconds["reader"] = finetune.elapsed(t0)
    fitted = {
        "cases": len(items), "refuse_cases": n_refuse, "rows": int(sum(len(it.labels) for it in items)),
        "positives": int(sum(it.labels.sum() for it in items)), "seed": seed, "folds": folds, "epochs": epochs,
        "C": c, "scope_C": scope_c, "target_wrong_rate": target_wrong, "target_false_refusal": target_false_refusal,
        "target_extra_precision": target_precision, "cross_validated": cv,
    }
    selector = Selector(FEATURES, sentence, scope_model, thresholds, sha, fitted)
    path = out or settings.answering.selector_path
    selector_id = write_selector(selector, path)
    return TuneReport(path, model_dir, selector_id, sha, len(items), int(sum(len(it.labels) for it in items)), len(pairs), c, scope_c,
                      thresholds, cv, seconds)
