"""The LightGBM sentence selector: numpy scoring against LightGBM itself, the artifact's round trip and checks,
and the format versions read."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from conftest import DATA
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.reader.features import FEATURES
from partnerbot.answering.reader.model import Linear, Selector, read_selector, write_selector
from partnerbot.answering.reader.trees import MISSING, Trees
from partnerbot.artifact import content_id
from partnerbot.errors import SelectorError
from partnerbot.evaluation.fitting import TreeParams, fit_trees
from partnerbot.index.build import build_index
from partnerbot.settings import Settings, bundled_selector_path

QUESTIONS = ("What is the Alpha Program?", "How many spare lighthouse lamps does the Alpha Program keep?",
             "Who runs the Beta office?", "When did the Gamma project start?", "Where is the Beta office?",
             "What does the Gamma project study?", "How do I contact the Alpha Program?", "What is a lighthouse?")
N = len(FEATURES)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory, model: object) -> np.ndarray:
    """Real candidate feature rows: the tiny test corpus, indexed, and each question's candidates."""
    import shutil

    root = tmp_path_factory.mktemp("trees")
    shutil.copytree(DATA / "corpus", root / "corpus")
    settings = Settings(corpus_dir=root / "corpus", data_dir=root / "data")
    build_index(settings)
    assistant = Assistant(settings)
    matrix = np.vstack([assistant.prepare(q).candidates.matrix for q in QUESTIONS])
    assert matrix.shape[1] == N and len(matrix) >= 40 and np.isfinite(matrix).all()
    return matrix


def booster(x: np.ndarray, y: np.ndarray, **extra: Any) -> lgb.Booster:
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 3, "min_data_in_bin": 1,
              "learning_rate": 0.1, "colsample_bytree": 0.8, "seed": 3, "deterministic": True, "num_threads": 1,
              "verbose": -1} | extra
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=60)


def with_thresholds(trees: Trees, x: np.ndarray) -> np.ndarray:
    """Rows of `x` with, in turn, each split's feature set to exactly that split's threshold (the `<=` edge)."""
    out = [x]
    for tree in trees.trees[:20]:
        for f, t in zip(tree.feature, tree.threshold, strict=True):
            edge = x[: 4].copy()
            edge[:, f] = t
            out.append(edge)
    return np.vstack(out)


def test_numpy_trees_score_real_rows_as_lightgbm_does(rows: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rows, rows + rng.normal(scale=0.05, size=rows.shape)])
    dense = x[:, FEATURES.index("dense")]
    y = (dense + rng.normal(scale=0.05, size=len(x)) > np.median(dense)).astype(int)
    fitted = booster(x, y)
    trees = Trees.from_dump(fitted.dump_model(), N)
    assert len(trees.trees) == 60 and sum(t.splits for t in trees.trees) > 100
    probe = with_thresholds(trees, x)
    assert np.abs(trees.probability(probe) - fitted.predict(probe, raw_score=False)).max() < 1e-9
    assert trees.probability(np.zeros((0, N))).shape == (0,)
    assert trees.probability(x[0]).shape == ()  # one vector, as `Linear` takes it


@pytest.mark.parametrize("missing", ["NaN", "Zero"])
def test_missing_values_go_lightgbms_default_way(missing: str) -> None:
    """Our features are never missing, but a model that has missing-value splits still scores as LightGBM does."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, N))
    x[rng.random(x.shape) < 0.15] = np.nan if missing == "NaN" else 0.0
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) > 0.3).astype(int)
    fitted = booster(x, y, zero_as_missing=missing == "Zero")
    trees = Trees.from_dump(fitted.dump_model(), N)
    code = MISSING.index(missing)
    assert any(code in t.missing for t in trees.trees)
    probe = np.vstack([x, np.where(rng.random(x.shape) < 0.3, np.nan, x)])
    assert np.abs(trees.probability(probe) - fitted.predict(probe)).max() < 1e-9


def test_fit_trees_is_deterministic_and_refuses_missing_features(rows: np.ndarray) -> None:
    y = (rows[:, FEATURES.index("lexical")] > np.median(rows[:, FEATURES.index("lexical")])).astype(int)
    params = TreeParams(trees=40, num_leaves=7, min_child_samples=5)
    a, b = fit_trees(rows, y, params, seed=5), fit_trees(rows, y, params, seed=5)
    assert a.to_json() == b.to_json() and len(a.trees) == 40
    broken = rows.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_trees(broken, y, params, seed=5)


@pytest.fixture
def tree_selector(rows: np.ndarray) -> Selector:
    """The shipped reader with a tree ensemble as its sentence selector."""
    y = (rows[:, FEATURES.index("dense")] > np.median(rows[:, FEATURES.index("dense")])).astype(int)
    trees = fit_trees(rows, y, TreeParams(trees=30, num_leaves=7, min_child_samples=5), seed=2)
    return dataclasses.replace(read_selector(bundled_selector_path()), sentence=trees)


def test_tree_artifact_round_trip_gives_identical_probabilities(tree_selector: Selector, rows: np.ndarray,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "selector.json"
    assert write_selector(tree_selector, path) == tree_selector.id
    again = read_selector(path)
    assert isinstance(again.sentence, Trees) and again.id == tree_selector.id
    assert np.array_equal(again.probability(rows), tree_selector.probability(rows))
    data = json.loads(path.read_text())
    assert data["format_version"] == 3 and data["model"]["kind"] == "trees" and data["scope_model"]["kind"] == "linear"
    assert len(path.read_text().splitlines()) < 400  # each list of numbers on one line


def _rewrite(path: Path, change: Any) -> None:
    """Change the artifact's content and give it a matching id, as a careless hand edit would."""
    data = json.loads(path.read_text())
    change(data)
    data["id"] = content_id(data)
    path.write_text(json.dumps(data))


MALFORMED = {
    "a child loops to the root": lambda d: d["model"]["trees"][0]["left"].__setitem__(0, 0),
    "a feature past the last": lambda d: d["model"]["trees"][0]["feature"].__setitem__(0, N),
    "a leaf missing": lambda d: d["model"]["trees"][0]["leaf"].pop(),
    "a fractional feature": lambda d: d["model"]["trees"][0]["feature"].__setitem__(0, 1.5),
    "a nested threshold list": lambda d: d["model"]["trees"][0].__setitem__("threshold", [[0.5]]),
    "no trees": lambda d: d["model"].__setitem__("trees", []),
    "a tree is a list": lambda d: d["model"]["trees"].__setitem__(0, [1, 2]),
    "no sigmoid": lambda d: d["model"].pop("sigmoid"),
    "an infinite leaf": lambda d: d["model"]["trees"][0]["leaf"].__setitem__(0, 1e400),
    "an unknown kind": lambda d: d["model"].__setitem__("kind", "forest"),
    "a tree scope model": lambda d: d["scope_model"].__setitem__("kind", "trees"),
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_tree_artifact_names_the_file(tree_selector: Selector, tmp_path: Path, change: Any) -> None:
    path = tmp_path / "selector.json"
    write_selector(tree_selector, path)
    _rewrite(path, change)
    with pytest.raises(SelectorError, match=rf"{re.escape(str(path))}: malformed model .*run `partnerbot tune`"):
        read_selector(path)


def test_a_tampered_tree_artifact_names_the_file(tree_selector: Selector, tmp_path: Path) -> None:
    path = tmp_path / "selector.json"
    write_selector(tree_selector, path)
    data = json.loads(path.read_text())
    data["model"]["trees"][3]["leaf"][0] += 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(SelectorError, match=rf"{re.escape(str(path))}: the content does not match its id.*partnerbot tune"):
        read_selector(path)


def test_format_versions_read_and_refused(rows: np.ndarray, tmp_path: Path) -> None:
    """Format 3 is written; a format-2 file (logistic regressions only) is still read, as `linear`, until the
    shipped artifact is re-tuned; any other version is refused with the command to run."""
    shipped = read_selector(bundled_selector_path())
    path = tmp_path / "selector.json"
    write_selector(shipped, path)
    assert isinstance(read_selector(path).sentence, Linear)

    def as_format_2(d: dict[str, Any]) -> None:
        d["format_version"] = 2
        d["model"]["kind"] = d["scope_model"]["kind"] = "logistic_regression"

    _rewrite(path, as_format_2)
    old = read_selector(path)
    assert isinstance(old.sentence, Linear)
    assert np.array_equal(old.probability(rows), shipped.probability(rows))
    for kind, version in (("trees", 2), ("logistic_regression", 3)):  # format 2 never held trees
        _rewrite(path, lambda d, k=kind, v=version: d.update(format_version=v, model=d["model"] | {"kind": k}))
        with pytest.raises(SelectorError, match="malformed model"):
            read_selector(path)
    for version in (1, 4):
        _rewrite(path, lambda d, v=version: d.__setitem__("format_version", v))
        with pytest.raises(SelectorError, match=rf"{re.escape(str(path))}: not a partnerbot-selector file of "
                                                r"version 3; run `partnerbot tune`"):
            read_selector(path)
