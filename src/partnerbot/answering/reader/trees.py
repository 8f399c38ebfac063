"""A boosted tree ensemble for the sentence selector, scored with plain numpy (serving never imports lightgbm).

`partnerbot tune` fits it with LightGBM (`evaluation.fitting.fit_trees`); `Trees.from_dump` takes the
dict of `Booster.dump_model()` apart into plain arrays, one set per tree. Scoring follows LightGBM's
numerical split exactly: a row goes left when its value is `<=` the node's threshold, except that a
missing value goes the node's default way: NaN under missing type "NaN", zero (|x| <= 1e-35) or NaN
under "Zero"; under "None" a NaN counts as 0. The probability is `1 / (1 + exp(-sigmoid * raw))`, the raw
score being the sum of one leaf per tree (LightGBM folds its starting score into the first tree's leaves).

Thresholds and leaf values are kept and stored at full precision: a rounded threshold moves a split, and
leaves rounded to 9 digits already move the probability by about 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

MISSING = ("None", "Zero", "NaN")  # LightGBM's missing types, stored as their index
_NONE, _ZERO, _NAN = range(3)
ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float widened to double
_ARRAYS = ("feature", "threshold", "default_left", "missing", "left", "right")


@dataclass(frozen=True)
class Tree:
    """One tree: per split node its feature, threshold, default way and missing type, and its two children;
    a child `c >= 0` is split node `c`, a child `c < 0` is leaf `~c`. Node 0 is the root (leaf 0 when
    the tree has no split)."""

    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray

    @property
    def splits(self) -> int:
        return len(self.feature)

    def checked_depth(self, n_features: int) -> int:
        """The number of splits on the longest path from the root, once the tree is checked.

        Raises:
            ValueError: the arrays do not make one well-formed tree over `n_features` features.
        """
        n = self.splits
        if any(len(getattr(self, k)) != n for k in _ARRAYS) or len(self.leaf) != n + 1:
            raise ValueError(f"a tree with {n} splits needs {n} of each split array and {n + 1} leaves")
        if n and not (((self.feature >= 0) & (self.feature < n_features)).all()
                      and np.isin(self.missing, (_NONE, _ZERO, _NAN)).all()
                      and np.isin(self.default_left, (0, 1)).all()):
            raise ValueError(f"split features must lie in [0, {n_features}), missing types in 0..2, default 0 or 1")
        if not (np.isfinite(self.threshold).all() and np.isfinite(self.leaf).all()):
            raise ValueError("thresholds and leaf values must be finite")
        seen: set[int] = set()
        level, depth = [0 if n else -1], 0
        while level:
            if seen.intersection(level) or len(set(level)) != len(level):
                raise ValueError("a node is reached twice: not a tree")
            seen.update(level)
            inner = [c for c in level if c >= 0]
            if any(c >= n or ~c > n for c in level):
                raise ValueError("a child points past the tree's nodes or leaves")
            level = [int(c) for i in inner for c in (self.left[i], self.right[i])]
            depth += bool(inner)
        if len(seen) != 2 * n + 1:
            raise ValueError("some nodes or leaves are not reached from the root")
        return depth

    def to_json(self) -> dict[str, Any]:
        return {"feature": _ints(self.feature), "threshold": [float(t) for t in self.threshold],
                "default_left": _ints(self.default_left), "missing": _ints(self.missing),
                "left": _ints(self.left), "right": _ints(self.right), "leaf": [float(v) for v in self.leaf]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tree:
        """Raises ValueError (or KeyError, TypeError) unless each array is a flat list of numbers, of whole
        numbers but for the thresholds and leaves."""
        return cls(**{k: _flat(data[k], whole=k not in ("threshold", "leaf")) for k in (*_ARRAYS, "leaf")})


@dataclass(frozen=True)
class Trees:
    """A binary boosted ensemble: `1 / (1 + exp(-sigmoid * sum of each tree's leaf))`."""

    kind: ClassVar[str] = "trees"
    trees: tuple[Tree, ...]
    sigmoid: float
    n_features: int
    _stacked: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)
    _depth: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Checks every tree and pads their arrays into one (trees x nodes) array each, for scoring.

        Raises:
            ValueError: no trees, a sigmoid not above zero, or a malformed tree.
        """
        if not self.trees or not (np.isfinite(self.sigmoid) and self.sigmoid > 0):
            raise ValueError("a tree ensemble needs at least one tree and a sigmoid above zero")
        depths = [t.checked_depth(self.n_features) for t in self.trees]
        width = max(1, max(t.splits for t in self.trees))

        def pad(k: str, size: int) -> np.ndarray:
            out = np.zeros((len(self.trees), size), dtype=getattr(self.trees[0], k).dtype)
            for i, t in enumerate(self.trees):
                out[i, : len(getattr(t, k))] = getattr(t, k)
            return out

        stacked = {k: pad(k, width) for k in _ARRAYS} | {"leaf": pad("leaf", width + 1)}
        stacked["default_left"] = stacked["default_left"].astype(bool)
        stacked["root"] = np.asarray([0 if t.splits else -1 for t in self.trees], dtype=np.int64)
        object.__setattr__(self, "_stacked", stacked)
        object.__setattr__(self, "_depth", max(depths))

    def raw_score(self, matrix: np.ndarray) -> np.ndarray:
        """The summed leaf values for each row of `matrix` (or for one vector)."""
        x = np.asarray(matrix, dtype=np.float64)
        rows_x = x.reshape(-1, x.shape[-1])
        a = self._stacked
        n, cols = len(rows_x), np.arange(len(self.trees))[None, :]
        rows = np.arange(n)[:, None]
        node = np.broadcast_to(a["root"], (n, len(self.trees))).copy()
        for _ in range(self._depth):
            inner = node >= 0
            if not inner.any():
                break
            at = np.where(inner, node, 0)
            value = rows_x[rows, a["feature"][cols, at]]
            missing = a["missing"][cols, at]
            nan = np.isnan(value)
            value = np.where(nan & (missing != _NAN), 0.0, value)
            is_missing = ((missing == _ZERO) & (np.abs(value) <= ZERO_THRESHOLD)) | ((missing == _NAN) & nan)
            go_left = np.where(is_missing, a["default_left"][cols, at], value <= a["threshold"][cols, at])
            node = np.where(inner, np.where(go_left, a["left"][cols, at], a["right"][cols, at]), node)
        return np.asarray(a["leaf"][cols, ~node].sum(axis=1).reshape(x.shape[:-1]), dtype=np.float64)

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """The modelled probability for each row of `matrix` (or for one vector)."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.sigmoid * self.raw_score(matrix))), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigmoid": float(self.sigmoid), "trees": [t.to_json() for t in self.trees]}

    @classmethod
    def from_json(cls, data: dict[str, Any], n: int) -> Trees:
        """Raises ValueError (or KeyError, TypeError) unless `data` holds well-formed trees over `n` features."""
        if not isinstance(data["trees"], list):
            raise ValueError("trees must be a list")
        return cls(tuple(Tree.from_json(t) for t in data["trees"]), float(data["sigmoid"]), n)

    @classmethod
    def from_dump(cls, dump: dict[str, Any], n: int) -> Trees:
        """The ensemble in `lightgbm.Booster.dump_model()`'s dict, a binary model over `n` numerical features.

        Raises:
            ValueError: another objective, several trees per iteration, averaged output or a categorical split.
        """
        objective = str(dump.get("objective", "")).split()
        if objective[:1] != ["binary"] or dump.get("num_tree_per_iteration") != 1 or dump.get("average_output"):
            raise ValueError(f"not a plain binary model: objective {dump.get('objective')!r}")
        sigmoid = next((float(p.split(":", 1)[1]) for p in objective[1:] if p.startswith("sigmoid:")), 1.0)
        return cls(tuple(_tree_from_dump(info["tree_structure"]) for info in dump["tree_info"]), sigmoid, n)


def _tree_from_dump(root: dict[str, Any]) -> Tree:
    """One tree from its nested dump: split nodes numbered by `split_index`, leaves by `leaf_index`."""
    splits: dict[int, dict[str, Any]] = {}
    leaves: dict[int, float] = {}

    def child(node: dict[str, Any]) -> int:
        if "leaf_value" in node:
            leaves[int(node.get("leaf_index", 0))] = float(node["leaf_value"])
            return ~int(node.get("leaf_index", 0))
        if node["decision_type"] != "<=":
            raise ValueError(f"split {node['split_index']} is categorical ({node['decision_type']!r})")
        i = int(node["split_index"])
        splits[i] = {"feature": int(node["split_feature"]), "threshold": float(node["threshold"]),
                     "default_left": int(bool(node["default_left"])),
                     "missing": MISSING.index(node["missing_type"]),
                     "left": child(node["left_child"]), "right": child(node["right_child"])}
        return i

    child(root)
    order = sorted(splits)
    if order != list(range(len(splits))) or sorted(leaves) != list(range(len(leaves))):
        raise ValueError("split and leaf indices must run from 0 without gaps")
    cols: dict[str, Sequence[float]] = {k: [splits[i][k] for i in order] for k in _ARRAYS}
    return Tree(**{k: np.asarray(v, dtype=np.float64 if k == "threshold" else np.int64) for k, v in cols.items()},
                leaf=np.asarray([leaves[i] for i in sorted(leaves)], dtype=np.float64))


def _flat(values: Any, whole: bool) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or (len(a) and a.dtype.kind not in ("iu" if whole else "iuf")):
        raise ValueError("each tree array must be a flat list of numbers, of whole numbers but for thresholds and leaves")
    return a.astype(np.int64 if whole else np.float64)


def _ints(a: np.ndarray) -> list[int]:
    return [int(v) for v in a]
