"""Follow-up questions: whether a question leans on an earlier turn, and the retrieval query it makes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from partnerbot.text import PRONOUNS, STOPWORDS, tokens

_REFERRING = frozenset(["it", "its", "they", "them", "their", "he", "she", "him", "her", "his"])


def is_elliptical(question: str) -> bool:
    """Does the question lean on an earlier turn for its topic ("When were they created?")?"""
    words = question.split()
    toks = tokens(question)
    content = [t for t in toks if t not in STOPWORDS]
    named = any(
        (w[:1].isupper() and i > 0) or (re.search(r"\d", w) and re.search(r"[A-Za-z]", w)) or (w.isupper() and len(w) > 1)
        for i, w in enumerate(words)
    )
    if named:
        return False
    return len(content) <= 1 or any(t in PRONOUNS for t in toks)


def names_no_topic(question: str) -> bool:
    """Is the question's topic only a pronoun ("When were they created?", "who runs it")?

    True when it names nothing (no capitalised word after the first, acronym or code), refers back with a
    pronoun, and holds at most one content word besides.
    """
    toks = tokens(question)
    content = [t for t in toks if t not in STOPWORDS and t not in PRONOUNS]
    return is_elliptical(question) and any(t in _REFERRING for t in toks) and len(content) <= 1


def retrieval_query(question: str, history: Sequence[str]) -> str:
    """The retrieval query: the question, plus the latest topical earlier turn if it is elliptical."""
    if not history or not is_elliptical(question):
        return question
    for turn in reversed(history):
        if not is_elliptical(turn):
            return f"{turn} {question}"
    return f"{history[-1]} {question}"
