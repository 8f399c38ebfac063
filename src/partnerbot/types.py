"""Typed values passed between the stages of the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

COMPONENTS = ("ERO", "HSI", "OPE", "ICE")


# pydantic's settings for its schema of a dataclass documented in the HTTP API (`Page`, `Source`): each field's
# docstring is its description there. A plain dict, so that this module imports no pydantic.
_DOCUMENTED: dict[str, bool] = {"use_attribute_docstrings": True}


@dataclass(frozen=True)
class Page:
    """A public page that supports a sentence: its address, the date it is as of, and its title."""

    __pydantic_config__: ClassVar[dict[str, bool]] = _DOCUMENTED

    url: str
    """The page's address."""
    date: str
    """The date the page is as of (YYYY-MM-DD): its publication, its archived capture, or when it was checked."""
    title: str = ""
    """The page's title, if known."""


@dataclass(frozen=True)
class Footnote:
    """A program document's footnote: `[^id]: URL (YYYY-MM-DD) "title"`, defined on `line`."""

    id: str
    """The marker's name, as in `[^zapata-act]`."""
    page: Page
    """The page the footnote cites and the date it is as of."""
    line: int
    """The file line of the definition (1-based), for error messages."""


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
    """A cited passage, numbered in order of first citation (the HTTP API documents it from this class)."""

    __pydantic_config__: ClassVar[dict[str, bool]] = _DOCUMENTED

    n: int
    """The number of the source: `[n]` in the answer cites it."""
    doc_id: str
    title: str
    """The document's title."""
    url: str
    """The page that supports the quote."""
    date: str
    """The date the page at `url` is as of (YYYY-MM-DD)."""
    section: str
    """The heading of the document's section that holds the quote."""
    quote: str
    """Verbatim from the document, at [start, end)."""
    start: int
    end: int
    score: float
    """The answerer's score for the sentence (for the fitted selector, the probability that it answers)."""
    doc_url: str = ""
    """The document's own page; `url` is the page that supports the quote."""
    page_title: str = ""
    """The title of the page at `url`, if known."""
    pages: tuple[Page, ...] = ()
    """Every page the quote's footnotes cite, `url`'s first."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: `pages` is a list of objects, as it reads back from JSON."""
        return asdict(self) | {"pages": [asdict(p) for p in self.pages]}


@dataclass(frozen=True)
class Dropped:
    """A generated sentence that failed verification, and why."""

    text: str
    reason: str


@dataclass(frozen=True)
class GateVerdict:
    """The reindex gate's decision on a new index version."""

    passed: bool
    """Whether the new version may become the active one."""
    message: str
    """Why, for the maintainer: the pass rates compared, the cases it would break, or what could not be compared."""


Gate = Callable[[str], GateVerdict]
"""A reindex gate: given a newly built version's id, its verdict (see `evaluation.gate.reindex_gate`)."""


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
    gate: GateVerdict | None = None
    """The reindex gate's verdict on the new version, when a gate ran."""


@dataclass(frozen=True)
class IndexStatus:
    """What `partnerbot status` reports."""

    version: str
    """The active version's id."""
    built_at: str
    """When it was built (ISO 8601, UTC)."""
    embed_model: str
    chunk_size: int
    chunk_overlap: int
    documents: int
    chunks: int
    previous: str | None
    stale: tuple[str, ...]
    """Documents changed, added or removed in the corpus since the version was built."""
    store: str
    corpus_error: str = ""
    """Why the corpus could not be compared with the version (it is invalid), or ""."""
