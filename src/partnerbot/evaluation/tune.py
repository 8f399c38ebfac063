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

Everything is seeded, so the same cases, index and seed give the same artifacts (and ids).
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

from partnerbot.answering.assistant import Assistant
from partnerbot.answering.reader.features import FEATURES, Query, featurize
from partnerbot.answering.reader.model import Linear, Selector, Thresholds, write_selector
from partnerbot.answering.reader.policy import choose, decide
from partnerbot.answering.reader.scope import scope_row
from partnerbot.artifact import is_artifact, read_manifest, weights_sha256_cached
from partnerbot.corpus.chunk import sentence_context
from partnerbot.errors import PartnerbotError
from partnerbot.evaluation import finetune
from partnerbot.evaluation.cases import Case, load_cases, prepare_case
from partnerbot.evaluation.evidence import gold_sentences, locate_evidence
from partnerbot.index.build import build_index
from partnerbot.index.read import IndexSnapshot
from partnerbot.index.snapshots import IndexSnapshots
from partnerbot.settings import Settings
from partnerbot.types import Hit

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
SCOPE_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
MIN_EXTRA_SUPPORT = 5  # added sentences needed on the train folds before the extra threshold is trusted
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
    return settings.model_copy(update={"data_dir": settings.data_dir / "tune-index",
                                       "embed_model": settings.base_model_path, "chroma_url": ""})


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


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cross_fit(state: IndexSnapshot, items: Sequence[Item], base: str, config: finetune.TrainConfig, folds: int,
              cache_dir: Path | None, log: Callable[[str], None]) -> None:
    """Give every item its out-of-fold features and question vector (see the module's step 2).

    The fold models' vectors are cached in `cache_dir`, keyed by everything they depend on, so refitting
    the reader alone takes seconds.
    """
    texts = contexts(state)
    plans = [triplets(state, [it for it in items if it.fold != k]) for k in range(folds)]
    key = _key(weights_sha256_cached(Path(base)), config, folds, texts, [[it.query.retrieval_query, it.fold] for it in items],
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


def _fit_linear(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Linear:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit((x - scaler.mean_) / scale, y)
    return Linear(scaler.mean_, scale, lr.coef_[0], float(lr.intercept_[0]))


def _group_folds(n_groups: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed + 1).permutation(n_groups)
    return [np.sort(order[k::folds]) for k in range(folds)]


def selector_oof(items: Sequence[Item], c: float, folds: int, seed: int) -> list[np.ndarray]:
    """Each item's candidate probabilities from a selector fitted without its case (on cross-fitted rows)."""
    out: list[np.ndarray] = [np.zeros(0)] * len(items)
    for held in _group_folds(len(items), folds, seed):
        held_set = set(held.tolist())
        train = [it for i, it in enumerate(items) if i not in held_set and len(it.labels)]
        model = _fit_linear(np.vstack([it.oof_matrix for it in train]), np.concatenate([it.labels for it in train]),
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
    for held in _group_folds(len(y), folds, seed + 7):
        mask = np.ones(len(y), dtype=bool)
        mask[held] = False
        out[held] = _fit_linear(x[mask], y[mask], c, seed).probability(x[held])
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
    base = settings.base_model_path
    assign_folds(items, folds, seed)
    t0 = time.perf_counter()
    cache = settings.data_dir / "tune-cache"
    cross_fit(state, items, base, config, folds, cache, log)
    seconds["cross_fit"] = finetune.elapsed(t0)

    t0 = time.perf_counter()
    pairs = triplets(state, items)
    model_dir = model_out or settings.tuned_model_dir
    training_key = _key(weights_sha256_cached(Path(base)), config, fp16,
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
    extra = extra_threshold(state, items, probs, answer, target_precision, settings.max_sentences)
    thresholds = Thresholds(answer, extra, t_scope)
    cv = figures(state, items, probs, scope, thresholds, settings.max_sentences)
    cv["top1"] = round(top1(items, probs), 4)
    cv["scope_auc"] = round(float(roc_auc_score(y_scope, scope)), 4)

    rows = [it for it in items if len(it.labels)]
    sentence = _fit_linear(np.vstack([it.oof_matrix for it in rows]), np.concatenate([it.labels for it in rows]),
                           c, seed)
    scope_model = _fit_linear(x_scope, y_scope, scope_c, seed)
    seconds["reader"] = finetune.elapsed(t0)
    fitted = {
        "cases": len(items), "refuse_cases": n_refuse, "rows": int(sum(len(it.labels) for it in items)),
        "positives": int(sum(it.labels.sum() for it in items)), "seed": seed, "folds": folds, "epochs": epochs,
        "C": c, "scope_C": scope_c, "target_wrong_rate": target_wrong, "target_false_refusal": target_false_refusal,
        "target_extra_precision": target_precision, "cross_validated": cv,
    }
    selector = Selector(FEATURES, sentence, scope_model, thresholds, sha, fitted)
    path = out or settings.selector_path
    selector_id = write_selector(selector, path)
    return TuneReport(path, model_dir, selector_id, sha, len(items), int(sum(len(it.labels) for it in items)), len(pairs), c, scope_c,
                      thresholds, cv, seconds)
