"""The fitted reader, stored as JSON: a sentence selector, a scope model and the calibrated thresholds.

- The *selector* is a logistic regression over `features.FEATURES`: the probability that a candidate
  sentence answers the question.
- The *scope model* is a logistic regression over the question's embedding and its candidates' best
  scores (`scope.SCOPE_SCORES`): the probability that the corpus answers the question at all.

`partnerbot tune` fits both on `evals/train/` and writes the artifact; serving scores with plain numpy.
The artifact names the SHA-256 of the embedding model it was fitted with, and its `id` is a hash of its
content; each index version records the id it was built with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from partnerbot.answering.reader.features import FEATURES
from partnerbot.answering.reader.scope import SCOPE_SCORES
from partnerbot.artifact import SELECTOR_FORMAT as FORMAT
from partnerbot.artifact import SELECTOR_FORMAT_VERSION as FORMAT_VERSION
from partnerbot.artifact import content_id, read_selector_json
from partnerbot.errors import SelectorError


@dataclass(frozen=True)
class Thresholds:
    """Calibrated probabilities: in scope at all, to answer, and to add a further sentence."""

    answer: float
    extra: float
    scope: float = 0.0


@dataclass(frozen=True)
class Linear:
    """A standardised logistic regression: `sigmoid(((x - mean) / scale) @ coef + intercept)`."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """The modelled probability for each row of `matrix` (or for one vector)."""
        z = ((matrix - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "logistic_regression", "mean": _floats(self.mean), "scale": _floats(self.scale),
                "coef": _floats(self.coef), "intercept": _round(self.intercept)}

    @classmethod
    def from_json(cls, data: dict[str, Any], n: int) -> Linear:
        """Raises ValueError unless each of mean, scale and coef holds `n` numbers, scale above zero."""
        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (n,) for a in arrays) or not (arrays[1] > 0).all():
            raise ValueError(f"mean, scale and coef must each hold {n} numbers, scale above zero")
        return cls(arrays[0], arrays[1], arrays[2], float(data["intercept"]))


@dataclass(frozen=True)
class Selector:
    """The fitted reader: sentence selector, scope model, thresholds, and what they were fitted with."""

    features: tuple[str, ...]
    sentence: Linear
    scope: Linear
    thresholds: Thresholds
    embed_sha256: str
    fitted: dict[str, Any]

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """The probability that each row's sentence answers the question."""
        return self.sentence.probability(matrix)

    def in_scope(self, scope_row: np.ndarray) -> float:
        """The probability that the corpus answers the question whose scope row (`scope.scope_row`) this is."""
        return float(self.scope.probability(scope_row))

    def to_json(self) -> dict[str, Any]:
        """The artifact's content, without its id."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "scope_scores": list(SCOPE_SCORES),
            "model": self.sentence.to_json(),
            "scope_model": self.scope.to_json(),
            "thresholds": {"answer": _round(self.thresholds.answer), "extra": _round(self.thresholds.extra),
                           "scope": _round(self.thresholds.scope)},
            "embed_model_sha256": self.embed_sha256,
            "fitted": self.fitted,
        }

    @property
    def id(self) -> str:
        """A short hash of the artifact's content: equal content, equal id."""
        return content_id(self.to_json())


def _round(x: float) -> float:
    return float(f"{float(x):.9g}")


def _floats(a: np.ndarray) -> list[float]:
    return [_round(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def write_selector(selector: Selector, path: Path) -> str:
    """Write the artifact (atomically) and return its id."""
    data = selector.to_json()
    data["id"] = content_id(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return str(data["id"])


def read_selector(path: Path) -> Selector:
    """Load and check an artifact.

    Raises:
        SelectorError: the file is missing, unreadable, altered, of another format, or fitted on other features;
            the message names the file and says to run `partnerbot tune`.
    """
    fix = "run `partnerbot tune` to fit a new one"
    data = read_selector_json(path)
    if tuple(data.get("features", ())) != FEATURES or tuple(data.get("scope_scores", ())) != SCOPE_SCORES:
        raise SelectorError(f"{path}: fitted on other features than this version of partnerbot computes; {fix}")
    try:
        sentence = Linear.from_json(data["model"], len(FEATURES))
        scope_n = len(data["scope_model"]["coef"])
        if scope_n <= len(SCOPE_SCORES):
            raise ValueError("the scope model has no question-embedding weights")
        scope = Linear.from_json(data["scope_model"], scope_n)
        t = data["thresholds"]
        thresholds = Thresholds(float(t["answer"]), float(t["extra"]), float(t["scope"]))
        return Selector(FEATURES, sentence, scope, thresholds, str(data["embed_model_sha256"]),
                        dict(data.get("fitted", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise SelectorError(f"{path}: malformed model ({exc}); {fix}") from exc
