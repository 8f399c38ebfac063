"""Choose the answer sentences from scored candidates, or refuse: one calibrated threshold, no rules.

- The most probable sentence answers, if its probability reaches the calibrated answer threshold;
  otherwise partnerbot refuses.
- A further sentence is added only when it reaches the (higher) calibrated extra threshold on its own
  and adds a different fact: it is not a near-copy of a chosen sentence and most of its words are new.
- An answer holds 1 to `max_sentences` sentences.
"""

from __future__ import annotations

import numpy as np

from .selector import Thresholds
from .version import Version

# Sentences this similar in meaning say the same thing twice.
NEAR_COPY = 0.85
# The share of a further sentence's words that must be new to the answer so far.
NEW_WORDS = 0.5


def choose(state: Version, sentences: tuple[int, ...], probability: np.ndarray, thresholds: Thresholds,
           max_sentences: int) -> list[tuple[int, float]]:
    """The chosen (sentence index, probability) pairs, best first; empty means refuse.

    Args:
        state: the loaded index version (sentence vectors and stems).
        sentences: candidate sentence indices.
        probability: the selector's probability for each candidate.
        thresholds: the calibrated answer and extra thresholds.
        max_sentences: the most sentences in one answer.
    """
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


def adds_a_fact(state: Version, candidate: int, chosen: list[int]) -> bool:
    """Is `candidate` neither a near-copy of a chosen sentence nor mostly words already given?"""
    similar = state.sentence_vecs[chosen] @ state.sentence_vecs[candidate]
    if float(similar.max()) >= NEAR_COPY:
        return False
    words = state.sentence_stems[candidate]
    given = frozenset().union(*(state.sentence_stems[c] for c in chosen))
    return bool(words) and len(words - given) / len(words) >= NEW_WORDS
