"""A case's gold evidence: where each quoted passage sits in the corpus, and which passages hold it.

A passage (an answer's source, an index sentence) holds the evidence when it shares a character with it:
the metrics count an answer's sentence as gold that way, and `tune` and `calibrate` label candidates so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from partnerbot.errors import EvalError

if TYPE_CHECKING:
    from partnerbot.evaluation.cases import Case
    from partnerbot.index.read import IndexSnapshot


@dataclass(frozen=True)
class Span:
    """Where an evidence quote sits in the corpus."""

    doc_id: str
    start: int
    end: int


def locate_evidence(cases: Sequence[Case], doc_texts: dict[str, str]) -> dict[str, Span]:
    """Where each case's evidence sits in the corpus.

    Raises:
        EvalError: a passage does not occur exactly once in the corpus, naming the file and case.
    """
    spans: dict[str, Span] = {}
    for case in cases:
        for quote in case.evidence:
            found = [(d, m.start()) for d, text in doc_texts.items() for m in re.finditer(re.escape(quote), text)]
            if len(found) != 1:
                where = ", ".join(sorted({d for d, _ in found})) or "nowhere"
                raise EvalError(f"{case.file}: case {case.id!r}: evidence {quote!r} occurs {len(found)} times in "
                                f"the corpus ({where}); it must occur exactly once: quote a longer passage")
            doc_id, start = found[0]
            spans[quote] = Span(doc_id, start, start + len(quote))
    return spans


def holds_evidence(doc_id: str, start: int, end: int, spans: Iterable[Span]) -> bool:
    """Does the passage at [start, end) of document `doc_id` overlap any of the evidence `spans`?"""
    return any(g.doc_id == doc_id and g.start < end and start < g.end for g in spans)


def gold_sentences(state: IndexSnapshot, spans: Sequence[Span]) -> tuple[int, ...]:
    """The index of every sentence of `state` that holds some of the evidence `spans`."""
    return tuple(i for i, s in enumerate(state.sentences) if holds_evidence(s.doc_id, s.start, s.end, spans))
