"""The reader: from a question's scored candidate sentences to one of three outcomes.

`Reader.read` is the one call `Assistant` makes. Inside: `features` (what a candidate looks like),
`scope` (what the scope model sees of a question), `model` (the fitted selector and scope model) and
`policy` (answer, uncertain or decline, by the calibrated thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..version import Version
from .features import Candidates, Query
from .model import Selector
from .policy import Decision, Outcome, decide
from .scope import scope_row

__all__ = ["Outcome", "Reader", "Reading"]


@dataclass(frozen=True)
class Reading:
    """What the reader made of one question: the outcome, the sentences it shows, and the scores behind it."""

    outcome: Outcome
    picked: tuple[tuple[int, float], ...] = ()
    scores: dict[str, float] = field(default_factory=dict)


class Reader:
    """The fitted selector and scope model with the three-outcome policy."""

    def __init__(self, selector: Selector, max_sentences: int):
        self.selector = selector
        self.max_sentences = max_sentences

    def read(self, state: Version, candidates: Candidates, query: Query) -> Reading:
        """The outcome for a prepared question (`query.vector` is its retrieval query's embedding)."""
        vector = query.vector
        probability = self.selector.probability(candidates.matrix)
        scope = self.selector.in_scope(scope_row(vector, candidates.matrix, probability))
        t = self.selector.thresholds
        decision: Decision = decide(state, candidates.sentences, probability, scope, t, self.max_sentences,
                                    query.topical)
        scores = {"probability": round(float(probability.max()), 4) if len(probability) else 0.0,
                  "threshold": round(t.answer, 4), "scope": round(scope, 4), "scope_threshold": round(t.scope, 4)}
        return Reading(decision.outcome, decision.picked, scores)
