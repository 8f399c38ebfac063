"""Typed values passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COMPONENTS = ("ERO", "HSI", "OPE", "ICE")


@dataclass(frozen=True)
class Page:
    """A public page that supports a sentence: its address, the date it is as of, and its title."""

    url: str
    date: str
    title: str = ""


@dataclass(frozen=True)
class Footnote:
    """A program document's footnote: `[^id]: URL (YYYY-MM-DD) "title"`, defined on `line`."""

    id: str
    page: Page
    line: int


@dataclass(frozen=True)
class Document:
    """One corpus file: front matter plus its Markdown body.

    `text` is the body without footnote markers or definitions, so offsets into it are what is
    embedded, searched and quoted. `marks` records where each marker stood: (offset in `text`,
    footnote id), the offset being where the sentence it follows ends.
    """

    id: str
    title: str
    url: str
    date: str
    component: str
    sources: tuple[str, ...]
    summary: str
    text: str
    content_hash: str
    footnotes: tuple[Footnote, ...] = ()
    marks: tuple[tuple[int, str], ...] = ()

    @property
    def own_source(self) -> bool:
        """Whether the document is its own source (its only `sources` entry is its `url`, as for a press release)."""
        return self.sources == (self.url,)

    def pages(self, start: int, end: int) -> tuple[Page, ...]:
        """The pages cited by the footnotes of the sentence text[start:end], in marker order.

        A document that is its own source supports every sentence with its own page.
        """
        by_id = {f.id: f.page for f in self.footnotes}
        found = [by_id[i] for at, i in self.marks if start < at <= end and i in by_id]
        if not found and self.own_source:
            return (Page(self.url, self.date, self.title),)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Span:
    """A passage of a document: its text and character offsets in `Document.text`."""

    id: str
    doc_id: str
    section: str
    text: str
    start: int
    end: int


class Chunk(Span):
    """A retrieval chunk: part of one `##` section."""


@dataclass(frozen=True)
class Sentence(Span):
    """A quotable sentence and the pages that support it."""

    pages: tuple[Page, ...] = ()


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and rank signals."""

    chunk: Chunk
    score: float
    dense: float | None = None
    bm25: float | None = None


@dataclass(frozen=True)
class Source:
    """A cited passage, numbered in order of first citation.

    `url` and `date` are the page that supports the quoted sentence and the date it is as of;
    `doc_url` is the document's own page. `pages` lists every supporting page, `url`'s first.
    """

    n: int
    doc_id: str
    title: str
    url: str
    date: str
    section: str
    quote: str
    start: int
    end: int
    score: float
    doc_url: str = ""
    page_title: str = ""
    pages: tuple[Page, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: `pages` is a list of objects, as it reads back from JSON."""
        return asdict(self) | {"pages": [asdict(p) for p in self.pages]}


@dataclass(frozen=True)
class Dropped:
    """A generated sentence that failed verification, and why."""

    text: str
    reason: str


@dataclass(frozen=True)
class Answer:
    """What `Assistant.ask` returns: the text with `[n]` markers and its sources."""

    question: str
    text: str
    sources: tuple[Source, ...]
    refused: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    retrieved_doc_ids: tuple[str, ...] = ()
    index_version: str = ""
    unavailable: bool = False
    evidence: dict[str, float] = field(default_factory=dict)
    language: str = "en"
    mode: str = "extractive"  # "generated": written by a language model from the sources, each sentence checked
    fallback: str = ""  # why a generated answer was not given, when generation was asked for
    dropped: tuple[Dropped, ...] = ()  # generated sentences that failed verification
    extractive: str = ""  # the quoted answer a generated one was written from
    # "answered" (confident), "uncertain" (in scope: the closest passages, shown as such), "declined" (out of
    # scope, no sources) or "unavailable" (the store is down). `refused` is true for "declined" and "unavailable".
    outcome: str = ""

    def __post_init__(self) -> None:
        if not self.outcome:  # derived for answers built without one (a language model's rewrite keeps its own)
            kind = "unavailable" if self.unavailable else "declined" if self.refused else "answered"
            object.__setattr__(self, "outcome", kind)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by `ask --json` and the `/ask` endpoint."""
        return {
            "question": self.question,
            "answer": self.text,
            "outcome": self.outcome,
            "refused": self.refused,
            "unavailable": self.unavailable,
            "language": self.language,
            "mode": self.mode,
            "fallback": self.fallback,
            "sources": [s.to_dict() for s in self.sources],
            "timings_ms": dict(self.timings_ms),
        }


@dataclass(frozen=True)
class IndexSummary:
    """What one `partnerbot index` run did (or would do, with --dry-run)."""

    version: str | None
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    chunks_embedded: int
    chunks_total: int
    seconds: float
    dry_run: bool = False
    switched: bool = True
    note: str = ""


@dataclass(frozen=True)
class IndexStatus:
    """What `partnerbot status` reports."""

    version: str
    built_at: str
    embed_model: str
    chunk_size: int
    chunk_overlap: int
    documents: int
    chunks: int
    previous: str | None
    stale: tuple[str, ...]
    store: str
