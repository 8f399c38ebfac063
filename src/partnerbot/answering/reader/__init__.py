"""The reader: from a question's scored candidate sentences to one of three outcomes.

`Reader.read` is the one call `Assistant` makes. Inside: `features` (what a candidate looks like),
`scope` (what the scope model sees of a question), `model` (the fitted selector and scope model) and
`policy` (answer, uncertain or decline, by the calibrated thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from partnerbot.answering.reader.features import Candidates, Query
from partnerbot.answering.reader.model import Selector, read_selector
from partnerbot.answering.reader.policy import Decision, Outcome, decide
from partnerbot.answering.reader.scope import scope_row
from partnerbot.errors import SelectorError
from partnerbot.index.read import IndexSnapshot
from partnerbot.settings import Settings

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

    @classmethod
    def load(cls, settings: Settings, *, check_model: bool = True) -> Reader:
        """The reader fitted by `partnerbot tune`, read from `settings.selector_path`.

        `check_model=False` skips the check that it was fitted with the configured embedding model (the
        reindex gate reads it beside a version built with another).

        Raises:
            SelectorError: the artifact is missing, does not fit this version of partnerbot, or was fitted
                with another embedding model than the configured one.
        """
        selector = read_selector(settings.answering.selector_path)
        sha = settings.index.model_sha256
        if check_model and selector.embed_sha256 != sha:
            raise SelectorError(
                f"{settings.answering.selector_path}: the answer selector was fitted with embedding model weights "
                f"{selector.embed_sha256[:12]}, but the configured model ({settings.index.model_path}) has "
                f"{sha[:12]}; run `partnerbot tune`, then `partnerbot index`")
        return cls(selector, settings.answering.max_sentences)

    def read(self, snapshot: IndexSnapshot, candidates: Candidates, query: Query) -> Reading:
        """The outcome for a prepared question (`query.vector` is its retrieval query's embedding)."""
        vector = query.vector
        probability = self.selector.probability(candidates.matrix)
        scope = self.selector.in_scope(scope_row(vector, candidates.matrix, probability))
        t = self.selector.thresholds
        decision: Decision = decide(snapshot, candidates.sentences, probability, scope, t, self.max_sentences,
                                    query.topical)
        scores = {"probability": round(float(probability.max()), 4) if len(probability) else 0.0,
                  "threshold": round(t.answer, 4), "scope": round(scope, 4), "scope_threshold": round(t.scope, 4)}
        return Reading(decision.outcome, decision.picked, scores)
