"""Query normalisation against the corpus's own vocabulary, before retrieval and scoring.

Three steps, each derived from the corpus rather than from a list of special cases, after accents on
Latin letters are folded ("Secretaría" -> "Secretaria": the corpus is written in plain ASCII, and the
embedding model folds them anyway; a word cut at its accent would be "corrected" piece by piece):

- section references written loosely ("287g", "287 g", "287-G") take the corpus's form ("287(g)");
- a word that is neither in the corpus nor in symspellpy's English frequency dictionary is corrected
  with symspellpy against the corpus vocabulary and the common question words ("meny" -> "many");
- words the corpus only ever writes capitalised ("albence", "hsi") take the corpus's casing, unless
  they are also everyday English words ("best", "hero").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from typing import Any

from partnerbot.text import STOPWORDS

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]")
_URL = re.compile(r"https?://\S+|\b[\w.-]+\.(?:gov|com|org)\b\S*")
_SECTION_REF = re.compile(r"\b(\d{1,4})\(([a-z])\)")
# The English dictionary is ranked by frequency: words this common are never re-cased to an acronym.
COMMON_ENGLISH = 30_000


def fold_accents(text: str) -> str:
    """`text` with each accented Latin letter as its plain letter ("í" -> "i"); other scripts are left as they are."""
    if text.isascii():
        return text
    return "".join(_fold(c) for c in text)


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base.isascii() and base.isalpha() else char


@functools.lru_cache(maxsize=1)
def english_words() -> dict[str, int]:
    """symspellpy's English frequency dictionary: word -> rank (0 = most frequent)."""
    path = resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    ranked: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word = line.split(" ", 1)[0]
        ranked.setdefault(word, len(ranked))
    return ranked


class Normalizer:
    """Normalises questions against one corpus. Build it once per index version."""

    def __init__(self, texts: Iterable[str]):
        from symspellpy import SymSpell

        forms: dict[str, Counter[str]] = {}
        counts: Counter[str] = Counter()
        refs: set[tuple[str, str]] = set()
        for text in texts:
            text = _URL.sub(" ", text)  # addresses are lower case by convention: they say nothing of names
            refs.update(_SECTION_REF.findall(text))
            for word in _WORD.findall(text):
                low = word.lower()
                counts[low] += 1
                forms.setdefault(low, Counter())[word] += 1
        self.vocabulary = counts
        common = english_words()
        # A word the corpus never writes in lower case is a name or an acronym: restore its casing.
        self.casing = {
            low: form.most_common(1)[0][0]
            for low, form in forms.items()
            if low not in form and common.get(low, COMMON_ENGLISH) >= COMMON_ENGLISH
        }
        self._refs = [
            (re.compile(rf"\b{num}\s*[-(]?\s*{letter}\s*\)?(?![A-Za-z0-9])", re.I), f"{num}({letter})")
            for num, letter in sorted(refs)
        ]
        self._speller = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, n in [*counts.items(), *((w, 1) for w in STOPWORDS)]:
            if len(word) >= 3 and word.isalpha():
                self._speller.create_dictionary_entry(word, n)

    def __call__(self, question: str) -> str:
        """The question with accents folded, and section references, spelling and name casing normalised."""
        text = fold_accents(question)
        for pattern, form in self._refs:
            text = pattern.sub(form, text)
        return _WORD.sub(lambda m: self._word(m.group(0)), text)

    def _word(self, word: str) -> str:
        low = word.lower()
        fixed = low
        if low not in self.vocabulary and low not in STOPWORDS and low not in english_words():
            fixed = self.correct(low) or low
        if fixed in self.casing and (word.islower() or fixed != low):
            return self.casing[fixed]
        return fixed if fixed != low else word

    def correct(self, word: str) -> str | None:
        """The closest corpus or question word to a misspelt `word`, or None."""
        from symspellpy import Verbosity

        if len(word) < 3 or not word.isalpha():
            return None
        distance = 1 if len(word) <= 5 else 2
        found = self._speller.lookup(word, Verbosity.CLOSEST, max_edit_distance=distance)
        return str(found[0].term) if found else None


def find_acronyms(texts: Any) -> dict[str, str]:
    """Acronyms defined in the corpus as "Full Name (ACR)", where the initials match."""
    small = ("and", "of", "the", "for", "on", "to")
    found: dict[str, str] = {}
    pattern = r"((?:[A-Z][\w'-]*[ ,]+(?:(?:and|of|the|for|on|to)\s+)*){1,9})\(([A-Z][A-Za-z0-9]{1,7})\)"
    for text in texts:
        for m in re.finditer(pattern, text):
            words = m.group(1).replace(",", " ").split()
            acr = m.group(2)
            # A digit repeats the letter before it: "C3" is the initials C, C, C.
            letters = re.sub(r"([A-Z])(\d)", lambda d: d.group(1) * int(d.group(2)), acr)
            letters = "".join(c for c in letters if c.isupper())
            key = acr[:-1].upper() if acr.endswith("s") and acr[:-1].isupper() else acr.upper()
            for start in range(len(words)):
                cand = [w for w in words[start:] if w.lower() not in small]
                initials = "".join(w[0] for w in cand).upper()
                if initials == letters or (len(letters) >= 3 and initials.startswith(letters)):
                    name = words[start:]
                    while name and name[0].lower() in small:
                        name = name[1:]
                    found.setdefault(key, " ".join(name))
                    break
    return found
