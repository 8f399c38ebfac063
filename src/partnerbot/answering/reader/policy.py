"""Three honest outcomes from scored candidates: answer, "not sure" with the closest passages, or decline.

- *declined*: the scope model's probability is below the calibrated scope threshold (or there is no
  candidate at all). Nothing is cited.
- *answered*: in scope, and the most probable sentence reaches the calibrated answer threshold. A further
  sentence is added only when it reaches the (higher) extra threshold on its own and adds a different
  fact: it is not a near-copy of a chosen sentence and most of its words are new.
- *uncertain*: in scope, but no sentence is confident enough, or the question names no topic of its own
  ("When were they created?") and there is no earlier turn to take one from. The closest passages are shown (up to
  `PASSAGES`, best first, near-copies left out) as such, never as an answer.

The thresholds are calibrated by `partnerbot tune` on out-of-fold train predictions; there are no rules
for particular questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from partnerbot.answering.reader.model import Thresholds
from partnerbot.index.read import IndexSnapshot

# Sentences this similar in meaning say the same thing twice.
NEAR_COPY = 0.85
# The share of a further sentence's words that must be new to the answer so far.
NEW_WORDS = 0.5
# The most passages an uncertain reply shows.
PASSAGES = 3

Outcome = Literal["answered", "uncertain", "declined"]


@dataclass(frozen=True)
class Decision:
    """An outcome and the (sentence index, probability) pairs it shows, best first."""

    outcome: Outcome
    picked: tuple[tuple[int, float], ...] = ()


def decide(state: IndexSnapshot, sentences: tuple[int, ...], probability: np.ndarray, scope: float,
           thresholds: Thresholds, max_sentences: int, topical: bool = True) -> Decision:
    """The outcome for one question.

    Args:
        state: the loaded index version (sentence vectors and stems).
        sentences: candidate sentence indices.
        probability: the selector's probability for each candidate.
        scope: the scope model's probability that the corpus answers the question.
        thresholds: the calibrated scope, answer and extra thresholds.
        max_sentences: the most sentences in one answer.
        topical: False when the question names no topic and no earlier turn gave it one: it is never answered
            with confidence, only shown the closest passages.
    """
    if not sentences or scope < thresholds.scope:
        return Decision("declined")
    picked = choose(state, sentences, probability, thresholds, max_sentences) if topical else []
    if picked:
        return Decision("answered", tuple(picked))
    return Decision("uncertain", tuple(closest(state, sentences, probability, PASSAGES)))


def choose(state: IndexSnapshot, sentences: tuple[int, ...], probability: np.ndarray, thresholds: Thresholds,
           max_sentences: int) -> list[tuple[int, float]]:
    """The confident answer sentences, best first; empty when the best is below the answer threshold."""
    if not sentences:
        return []
    order = np.argsort(-probability, kind="stable")
    best = int(order[0])
    if probability[best] < thresholds.answer:
        return []
    chosen = [best]
    for j in order[1:]:
        j = int(j)
        if len(chosen) >= max_sentences or probability[j] < thresholds.extra:
            break
        if adds_a_fact(state, sentences[j], [sentences[c] for c in chosen]):
            chosen.append(j)
    return [(sentences[j], float(probability[j])) for j in chosen]


def closest(state: IndexSnapshot, sentences: tuple[int, ...], probability: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The `n` most probable candidates, best first, each adding a fact to those before it."""
    chosen: list[int] = []
    for j in np.argsort(-probability, kind="stable"):
        j = int(j)
        if len(chosen) >= n:
            break
        if not chosen or adds_a_fact(state, sentences[j], [sentences[c] for c in chosen]):
            chosen.append(j)
    return [(sentences[j], float(probability[j])) for j in chosen]


def adds_a_fact(state: IndexSnapshot, candidate: int, chosen: list[int]) -> bool:
    """Is `candidate` neither a near-copy of a chosen sentence nor mostly words already given?"""
    similar = state.sentence_vecs[chosen] @ state.sentence_vecs[candidate]
    if float(similar.max()) >= NEAR_COPY:
        return False
    words = state.sentence_stems[candidate]
    given = frozenset().union(*(state.sentence_stems[c] for c in chosen))
    return bool(words) and len(words - given) / len(words) >= NEW_WORDS
