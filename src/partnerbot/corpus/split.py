"""Split Markdown text into quotable sentences, with character offsets.

It sits below `corpus` so that `corpus check` can require a source for every sentence, and below
`chunk`, which cuts the same sentences for the index.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Words after which a period does not end a sentence.
_ABBREV = {
    "u.s", "u.s.c", "d.c", "p.l", "mr", "mrs", "ms", "dr", "st", "no", "nos", "vs", "inc", "co", "corp",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov",
    "e.g", "i.e", "etc", "sen", "rep", "jr", "sr", "ft", "sq", "approx", "dept", "fig", "u.n",
}
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_LIST_ITEM = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)")


def _blocks(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Paragraphs and list items in text[start:end], as spans without markup prefixes."""
    pos = start
    for line in text[start:end].split("\n"):
        line_start, line_end = pos, pos + len(line)
        pos = line_end + 1
        if not line.strip() or line.lstrip().startswith(("#", "|", "```", ">")):
            yield (-1, -1)
            continue
        m = _LIST_ITEM.match(line)
        if m:
            yield (-1, -1)
            line_start += len(m.group(1))
        yield (line_start, line_end)


def _merge_blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Join consecutive lines of one paragraph into one span."""
    spans: list[tuple[int, int]] = []
    current: list[int] | None = None
    for s, e in _blocks(text, start, end):
        if s < 0:
            current = None
            continue
        if current is None:
            current = [s, e]
            spans.append((s, e))
        else:
            current[1] = e
            spans[-1] = (current[0], e)
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.search(r"([A-Za-z.]+)$", text[:dot])
    if not word:
        return False
    w = word.group(1).lower().strip(".")
    return w in _ABBREV or (len(w) == 1 and w.isalpha())


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end], trimmed of surrounding whitespace."""
    out: list[tuple[int, int]] = []
    for b_start, b_end in _merge_blocks(text, start, end):
        s = b_start
        for m in _BOUNDARY.finditer(text, b_start, b_end):
            if _is_abbreviation(text, m.start()):
                continue
            e = m.end()
            out.append((s, e))
            s = e
        out.append((s, b_end))
    trimmed = []
    for s, e in out:
        seg = text[s:e]
        s2 = s + (len(seg) - len(seg.lstrip()))
        e2 = e - (len(seg) - len(seg.rstrip()))
        if e2 > s2:
            trimmed.append((s2, e2))
    return trimmed
