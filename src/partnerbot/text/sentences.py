"""Sentences and paragraphs, as character spans into the text they come from.

One splitter serves the corpus and the generated answers: `split_sentences` cuts a Markdown document into the
quotable sentences that `corpus check` requires a footnote for and the index stores (`corpus/parse.py`,
`corpus/chunk.py`); `sentence_spans` cuts one paragraph of prose, such as a language model's reply
(`answering/generate.py`). A sentence ends at `.`, `!` or `?` (and any closing quotes or brackets) before
white space and a capital letter or digit, unless the period closes an abbreviation: a dotted initialism
("U.S.", "D.C.", "e.g.") or a word in `ABBREVIATIONS` ("Mr.", "Inc.", "Sept.").

nltk's punkt (bundled with llama-index) was measured against this on the corpus and not taken: it ends a
sentence after "U.S." before a capitalised word ("U.S. Citizenship and Immigration Services"), which cuts
seven of the corpus's sections wrongly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

# Words after which a period does not end a sentence (dotted initialisms never end one either).
ABBREVIATIONS = frozenset([
    "mr", "mrs", "ms", "dr", "st", "no", "nos", "vs", "inc", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov", "etc", "sen", "rep", "jr", "sr", "ft", "sq", "approx",
    "dept", "fig",
])
# A Markdown list item's bullet or number, with the space after it.
_LIST_MARKER = r"(?:[-*+]|\d+[.)])\s+"
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_LIST_ITEM = re.compile(rf"^(\s*{_LIST_MARKER})")
_BLOCK_MARKER = re.compile(rf"^(#{{1,6}}\s+|{_LIST_MARKER}|>\s?)")
_LAST_WORD = re.compile(r"([A-Za-z.]+)$")
_INITIALISM = re.compile(r"(?:[a-z]\.)*[a-z]")
_NOT_PROSE = ("#", "|", "```", ">")  # headings, table rows, code fences and quotes hold no quotable sentence


def _blocks(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The lines of text[start:end] that hold prose, as spans without list markers; (-1, -1) ends a paragraph."""
    pos = start
    for line in text[start:end].split("\n"):
        line_start, line_end = pos, pos + len(line)
        pos = line_end + 1
        if not line.strip() or line.lstrip().startswith(_NOT_PROSE):
            yield (-1, -1)
            continue
        m = _LIST_ITEM.match(line)
        if m:
            yield (-1, -1)
            line_start += len(m.group(1))
        yield (line_start, line_end)


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The prose paragraphs and list items of the Markdown text[start:end], consecutive lines joined into one span."""
    spans: list[tuple[int, int]] = []
    joining = False
    for s, e in _blocks(text, start, end):
        if s < 0:
            joining = False
        elif joining:
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
            joining = True
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    """Does the period at text[dot] close an abbreviation rather than a sentence?"""
    if text[dot] != ".":
        return False
    word = _LAST_WORD.search(text, 0, dot)
    if not word:
        return False
    w = word.group(1).lower().strip(".")
    return w in ABBREVIATIONS or _INITIALISM.fullmatch(w) is not None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The sentences of one paragraph of prose, text[start:end], as spans trimmed of surrounding white space."""
    end = len(text) if end is None else end
    cuts = [start]
    for m in _BOUNDARY.finditer(text, start, end):
        if not _is_abbreviation(text, m.start()):
            cuts.append(m.end())
    cuts.append(end)
    out = []
    for s, e in itertools.pairwise(cuts):
        piece = text[s:e]
        s2, e2 = s + len(piece) - len(piece.lstrip()), e - (len(piece) - len(piece.rstrip()))
        if e2 > s2:
            out.append((s2, e2))
    return out


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The quotable sentences of the Markdown text[start:end]: those of its paragraphs and list items, in order."""
    return [span for p_start, p_end in _paragraphs(text, start, end) for span in sentence_spans(text, p_start, p_end)]


def paragraph_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The paragraph holding text[start:end]: from after the blank line before it to the blank line after it."""
    a = text.rfind("\n\n", 0, start)
    b = text.find("\n\n", end)
    return (0 if a < 0 else a + 2), (len(text) if b < 0 else b)


def block_text(line: str) -> str:
    """A Markdown line without its block marker: a heading's `#`s, a list item's bullet or number, a quote's `>`."""
    return _BLOCK_MARKER.sub("", line)
