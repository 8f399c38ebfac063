"""Figures, years, months, names and dates in English text.

The reader's features (`answering/reader/features.py`) ask whether a sentence holds a figure, a year or a
month; the verifier of generated answers (`answering/verify.py`) asks whether the numbers and names of a
generated sentence are in the sentences it cites. Both read them with the patterns here. Corpus and index
dates are ISO strings (`iso_date`), said in words for retrieval (`date_words`).
"""

from __future__ import annotations

import datetime as dt
import re

from partnerbot.text.words import STOPWORDS

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# A year from 1800 to 2099, as a whole number.
YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
# A month's name, capitalised as in running text.
MONTH = re.compile(rf"\b({'|'.join(_MONTHS)})\b")
# A figure as written in a sentence: a count, an amount or a share ("77,000", "3.5", "40%", "percent"). Years
# match too: take them out with `YEAR` first where only counts and shares matter.
FIGURE = re.compile(r"\b\d[\d,.]*\b%?|\bpercent\b")
# A number as written, with thousands separators or a decimal point ("1,500", "2.5").
_NUMBER = re.compile(r"\d+(?:[,.]\d+)*")
# A word as names are written: letters with inner apostrophes, ampersands and hyphens ("O'Neill", "AT&T").
_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'’&-]*")
# Number words up to twenty, and the digits they stand for.
_NUMBER_WORDS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))}
_MONTH_WORDS = frozenset(m.lower() for m in _MONTHS)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def numbers(text: str) -> set[str]:
    """The numbers in `text`, thousands separators removed; number words up to twenty count as digits."""
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    found |= {_NUMBER_WORDS[w.lower()] for w in _NAME_WORD.findall(text) if w.lower() in _NUMBER_WORDS}
    return found


def names(text: str) -> set[str]:
    """Proper names and dates, lower-cased: capitalised words past a sentence's first word, acronyms and months.

    A sentence's first word is capitalised anyway, so it counts only when it is an acronym or a month.
    """
    found: set[str] = set()
    for i, m in enumerate(_NAME_WORD.finditer(text)):
        word = m.group(0).rstrip("'’").removesuffix("'s").removesuffix("’s")
        low = word.lower()
        dated_or_acronym = low in _MONTH_WORDS or (len(word) > 1 and word.isupper())
        if dated_or_acronym or (i > 0 and word[:1].isupper() and low not in STOPWORDS and word != "I"):
            found.add(low)
    return found


def name_words(text: str) -> set[str]:
    """Every word of `text` as `names` reads words, lower-cased, without a possessive 's."""
    return {w.lower().removesuffix("'s").removesuffix("’s") for w in _NAME_WORD.findall(text)}


def iso_date(value: str) -> dt.date | None:
    """The date written exactly as YYYY-MM-DD in `value`, or None (another form, or no such day)."""
    if not _ISO_DATE.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def date_words(iso: str) -> str:
    """An ISO date in words: "2020-07-30" -> "July 30 2020"; "" for anything that is not a YYYY-MM-DD date."""
    day = iso_date(iso)
    return f"{_MONTHS[day.month - 1]} {day.day} {day.year}" if day else ""
