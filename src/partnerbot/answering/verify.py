"""Check each generated sentence against the sentences it cites; keep those that pass.

A claim (a generated sentence) is kept only when:

1. it cites at least one of the given sentences, and every marker it carries is a given `[n]`;
2. every number, date and proper name in it (as the text toolkit finds them) appears in the sentences it cites;
3. it is close in meaning to them: its embedding's cosine similarity with the nearest cited sentence
   reaches the threshold calibrated on the train split (`calibrate.py`, stored in `models/verify.json`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from partnerbot.answering.generate import Claim
from partnerbot.errors import PartnerbotError
from partnerbot.text import name_words, names, numbers
from partnerbot.types import Dropped


class VerifierError(PartnerbotError):
    """The calibrated verification threshold is missing or unreadable."""


@dataclass(frozen=True)
class Verifier:
    """The calibrated similarity threshold and what it was calibrated on."""

    threshold: float
    calibrated_on: str = ""
    figures: dict[str, float] | None = None


def read_verifier(path: Path) -> Verifier:
    """The verification threshold written by `partnerbot calibrate`.

    Raises:
        VerifierError: the file is missing or malformed; run `partnerbot calibrate`.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Verifier(float(data["threshold"]), str(data.get("calibrated_on", "")), data.get("figures"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifierError(f"{path}: no usable verification threshold ({exc}); run `partnerbot calibrate`") from exc


def write_verifier(path: Path, verifier: Verifier) -> None:
    """Store the threshold and its calibration figures as a small JSON artifact."""
    data = {"threshold": round(verifier.threshold, 4), "calibrated_on": verifier.calibrated_on,
            "figures": verifier.figures or {}}
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def unsupported(claim: str, cited: list[str]) -> list[str]:
    """The numbers, dates and names in `claim` that none of the `cited` sentences contains."""
    source = " ".join(cited)
    words = name_words(source)
    missing = sorted(n for n in numbers(claim) - numbers(source))
    missing += sorted(n for n in names(claim) if n not in words
                      and not all(part in words for part in re.split(r"[-&]", n) if part))
    return missing


def check(claim: Claim, given: list[str], similarity: float, threshold: float) -> str:
    """Why `claim` fails verification against the `given` sentences (numbered from 1); "" when it passes."""
    if claim.bad_markers:
        return f"malformed citation {', '.join(claim.bad_markers)}"
    if not claim.cited:
        return "cites no source sentence"
    outside = [n for n in claim.cited if not 1 <= n <= len(given)]
    if outside:
        return f"cites [{', '.join(map(str, outside))}], which was not given"
    missing = unsupported(claim.text, [given[n - 1] for n in claim.cited])
    if missing:
        return f"not in the cited sentences: {', '.join(missing)}"
    if similarity < threshold:
        return f"not close in meaning to the cited sentences (similarity {similarity:.2f} < {threshold:.2f})"
    return ""


def similarities(claims: list[Claim], claim_vecs: np.ndarray, given_vecs: np.ndarray) -> list[float]:
    """Each claim's cosine similarity with the nearest sentence it cites (0.0 when it cites none that exist)."""
    out = []
    for claim, vec in zip(claims, claim_vecs, strict=True):
        rows = [n - 1 for n in claim.cited if 1 <= n <= len(given_vecs)]
        out.append(float((given_vecs[rows] @ vec).max()) if rows else 0.0)
    return out


def verify(claims: list[Claim], given: list[str], claim_vecs: np.ndarray, given_vecs: np.ndarray,
           threshold: float) -> tuple[list[Claim], list[Dropped]]:
    """Split the claims into those kept and those dropped (with the reason).

    Args:
        claims: the generated sentences.
        given: the source sentences shown to the model, numbered from 1.
        claim_vecs: unit-length embeddings of the claims' text, one row per claim.
        given_vecs: unit-length embeddings of the given sentences, one row per sentence.
        threshold: the calibrated similarity threshold.
    """
    kept: list[Claim] = []
    dropped: list[Dropped] = []
    for claim, sim in zip(claims, similarities(claims, claim_vecs, given_vecs), strict=True):
        reason = check(claim, given, sim, threshold)
        if reason:
            dropped.append(Dropped(claim.text, reason))
        else:
            kept.append(claim)
    return kept, dropped
