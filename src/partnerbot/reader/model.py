"""The fitted answer selector: a logistic regression over `features.FEATURES`, stored as JSON.

`partnerbot tune` fits it on `evals/train/` and writes the artifact; serving loads it and scores
candidate sentences with plain numpy. The artifact is small, readable and versioned: its `id` is a
hash of its content, and each index version records the id it was built with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SelectorError
from .features import FEATURES

FORMAT = "partnerbot-selector"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """Calibrated probabilities: to answer at all, and to add a further sentence."""

    answer: float
    extra: float


@dataclass(frozen=True)
class Selector:
    """A fitted model: standardisation, weights and the calibrated thresholds."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    thresholds: Thresholds
    fitted: dict[str, Any]

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """The probability that each row's sentence answers the question."""
        z = ((matrix - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """The artifact's content, without its id."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "model": {
                "kind": "logistic_regression",
                "mean": _floats(self.mean),
                "scale": _floats(self.scale),
                "coef": _floats(self.coef),
                "intercept": _round(self.intercept),
            },
            "thresholds": {"answer": _round(self.thresholds.answer), "extra": _round(self.thresholds.extra)},
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


def content_id(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


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
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SelectorError(f"{path}: no answer selector here; {fix}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SelectorError(f"{path}: the answer selector cannot be read ({exc}); {fix}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise SelectorError(f"{path}: not a {FORMAT} file of version {FORMAT_VERSION}; {fix}")
    if data.get("id") != content_id(data):
        raise SelectorError(f"{path}: the content does not match its id {data.get('id')!r} (edited by hand?); {fix}")
    if tuple(data.get("features", ())) != FEATURES:
        raise SelectorError(f"{path}: fitted on other features than this version of partnerbot computes; {fix}")
    try:
        model = data["model"]
        n = len(FEATURES)
        arrays = [np.asarray(model[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (n,) for a in arrays) or not (arrays[1] > 0).all():
            raise ValueError("mean, scale and coef must each hold one number per feature, scale above zero")
        thresholds = Thresholds(float(data["thresholds"]["answer"]), float(data["thresholds"]["extra"]))
        return Selector(FEATURES, arrays[0], arrays[1], arrays[2], float(model["intercept"]), thresholds,
                        dict(data.get("fitted", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise SelectorError(f"{path}: malformed model ({exc}); {fix}") from exc
