"""Words: lower-cased tokens, English stems (PyStemmer's Snowball), stopwords and pronouns."""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(r"[A-Za-z0-9]+")
STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "tell", "me", "please", "explain", "describe", "know", "want", "give", "show", "let", "us", "ok", "okay", "hi", "hello", "thanks", "thank", "does", "do", "did", "what's", "whats", "who's", "whos", "s", "t", "d", "ll", "m", "re", "ve", "much", "many", "kind", "someone", "somebody", "anyone", "anybody", "something", "anything", "thing", "things"])
PRONOUNS = frozenset(["it", "its", "they", "them", "their", "theirs", "this", "that", "these", "those", "he", "she", "him", "her", "his", "there"])


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens."""
    return [t.lower() for t in _TOKEN.findall(text)]


@functools.lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball English stem of a lower-cased word ("removals" -> "remov")."""
    return str(_stemmer().stemWord(word))


def content_stems(text: str) -> list[str]:
    """Stems of the non-stopword tokens, in order, without repeats."""
    seen: dict[str, None] = {}
    for t in tokens(text):
        if t not in STOPWORDS:
            seen.setdefault(stem(t), None)
    return list(seen)

