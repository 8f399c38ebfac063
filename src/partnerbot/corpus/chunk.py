"""Split documents into sections, retrieval chunks and quotable sentences, with offsets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from partnerbot.text import split_sentences
from partnerbot.types import Chunk, Document, Sentence


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


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def document_sentences(doc: Document) -> list[Sentence]:
    """Every quotable sentence of a document (headings excluded)."""
    out = []
    for sec in sections(doc):
        for s, e in split_sentences(doc.text, sec.start, sec.end):
            sent = doc.text[s:e]
            # The title is in the id because it is in the embedded text (`sentence_context`).
            out.append(Sentence(_hash(doc.id, doc.title, s, sec.heading, sent), doc.id, sec.heading, sent, s, e,
                                doc.pages(s, e)))
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
