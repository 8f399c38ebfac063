"""Split documents into sections, retrieval chunks and quotable sentences, with offsets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .types import Chunk, Document, Sentence

# Words after which a period does not end a sentence.
_ABBREV = {
    "u.s", "u.s.c", "d.c", "p.l", "mr", "mrs", "ms", "dr", "st", "no", "nos", "vs", "inc", "co", "corp",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov",
    "e.g", "i.e", "etc", "sen", "rep", "jr", "sr", "ft", "sq", "approx", "dept", "fig", "u.n",
}
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_LIST_ITEM = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)")


@dataclass(frozen=True)
class Section:
    """A `##` section of a document body: its heading and text span."""

    heading: str
    start: int
    end: int


def sections(doc: Document) -> list[Section]:
    """Split a body at `#`/`##` headings; text before the first `##` belongs to the title."""
    text = doc.text
    out: list[Section] = []
    heading = "Overview"
    start = 0
    for m in re.finditer(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", text, flags=re.M):
        if m.start() > start and text[start : m.start()].strip():
            out.append(Section(heading, start, m.start()))
        level = len(m.group(1))
        heading = "Overview" if level == 1 else m.group(2).strip()
        start = m.end()
    if text[start:].strip():
        out.append(Section(heading, start, len(text)))
    return out


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


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def document_sentences(doc: Document) -> list[Sentence]:
    """Every quotable sentence of a document (headings excluded)."""
    out = []
    for sec in sections(doc):
        for s, e in split_sentences(doc.text, sec.start, sec.end):
            sent = doc.text[s:e]
            # The title is in the id because it is in the embedded text (`sentence_context`).
            out.append(Sentence(_hash(doc.id, doc.title, s, sec.heading, sent), doc.id, sec.heading, sent, s, e))
    return out


def sentence_context(title: str, section: str, text: str) -> str:
    """What is embedded for a sentence: it, after its document's title and section heading.

    A sentence alone often leaves its subject implicit ("It has issued more than 77,000 lookouts");
    the title and heading say what it is about.
    """
    return f"{title}. {section}: {text}"


def document_chunks(doc: Document, split_text: Callable[[str], list[str]]) -> list[Chunk]:
    """Chunk a document along its sections, splitting long sections with `split_text`.

    `split_text` is llama-index's `SentenceSplitter.split_text`; every chunk it returns is
    located in the document so the chunk carries exact character offsets.
    """
    chunks: list[Chunk] = []
    for sec in sections(doc):
        body = doc.text[sec.start : sec.end]
        cursor = 0
        for piece in split_text(body):
            piece = piece.strip()
            if not piece:
                continue
            at = body.find(piece, cursor)
            if at < 0:
                at = body.find(piece)
            if at < 0:  # the splitter normalised whitespace: fall back to the span of its words
                first, last = piece.split()[0], piece.split()[-1]
                at = max(body.find(first, cursor), 0)
                stop = body.find(last, at)
                end = stop + len(last) if stop >= 0 else len(body)
            else:
                end = at + len(piece)
            cursor = at + 1
            s, e = sec.start + at, sec.start + end
            text = doc.text[s:e]
            chunks.append(Chunk(_hash(doc.id, len(chunks), sec.heading, doc.title, text), doc.id, sec.heading, text, s, e))
    return chunks
