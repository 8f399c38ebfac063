"""Typed values passed between the stages of the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from partnerbot.phrases import cite

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


class Outcome(StrEnum):
    """What became of a question; the values are the `outcome` strings of the answer JSON."""

    ANSWERED = "answered"  # confident: quoted sentences, each cited
    UNCERTAIN = "uncertain"  # in scope, nothing confident: `phrases.UNCERTAIN`, then the closest passages, cited
    DECLINED = "declined"  # outside the sources: `phrases.REFUSAL` (or the reply in the question's language), no sources
    # Never an answer's: the `outcome` of the error JSON when the document store or the index is not there.
    UNAVAILABLE = "unavailable"


class ProblemKind(StrEnum):
    """Why a request got no answer; the values are the `code` of the error JSON (see `serving.replies`)."""

    INPUT = "invalid_input"  # the question (or a piece of the request) is unusable: empty, too long, not text
    INVALID_REQUEST = "invalid_request"  # the body does not fit the schema (a field missing, of the wrong type)
    INVALID_BODY = "invalid_body"  # the body is not JSON, not UTF-8, or empty
    TOO_LARGE = "body_too_large"
    LENGTH_REQUIRED = "length_required"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # the document store cannot be reached, or fails
    NOT_READY = "not_ready"  # no usable index or reader
    INTERNAL = "internal_error"  # anything unexpected


@dataclass(frozen=True)
class Problem:
    """What a front end tells a client instead of an `Answer`: why there is none (`serving.replies` maps errors).

    `message` is for the public and `field` names the piece of input at fault (`question`, `history[2]`);
    `detail` is for operators (the CLI prints it) and is never sent to a client.
    """

    kind: ProblemKind
    message: str
    field: str | None = None
    detail: str = ""
    retry_after: float = 0.0  # RATE_LIMITED: seconds until the client may ask again

    @property
    def outcome(self) -> Outcome | None:
        """`Outcome.UNAVAILABLE` when the service, not the request, is at fault (and may recover by itself)."""
        return Outcome.UNAVAILABLE if self.kind in (ProblemKind.UNAVAILABLE, ProblemKind.NOT_READY) else None


@dataclass(frozen=True)
class Passage:
    """One sentence an answer shows, and the sources it cites (`[n]` after it)."""

    text: str
    """The sentence, as quoted from its source (or as a language model wrote it), without citation markers."""
    cites: tuple[int, ...]
    """The numbers `n` of the sources it cites, in order."""

    @property
    def cited(self) -> str:
        """The sentence followed by its markers: `The program began in 2005. [1]`."""
        return f"{self.text} {''.join(cite(n) for n in self.cites)}" if self.cites else self.text


@dataclass(frozen=True)
class Answer:
    """What `Assistant.ask` returns: an outcome, a notice, passages and their sources, held apart.

    The parts, not a text, are the answer. `notice` is what the reply says before any passage: the "not sure"
    heading of an uncertain reply (`phrases.UNCERTAIN`), or the whole of a decline (`phrases.REFUSAL`, or the
    reply in the question's language); an answered reply has none. Each front end derives what it shows
    from the parts; `text` is the plain form every text front end shares (the `answer` of the JSON).
    """

    question: str
    outcome: Outcome
    passages: tuple[Passage, ...] = ()
    sources: tuple[Source, ...] = ()
    notice: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    retrieved_doc_ids: tuple[str, ...] = ()
    index_version: str = ""
    language: str = "en"
    mode: str = "extractive"  # "generated": written by a language model from the sources, each sentence checked
    fallback: str = ""  # why a generated answer was not given, when generation was asked for
    dropped: tuple[Dropped, ...] = ()  # generated sentences that failed verification
    extractive: str = ""  # the text of the quoted answer a generated one was written from

    def __post_init__(self) -> None:
        outcome = Outcome(self.outcome)  # raises ValueError for an unknown outcome
        if outcome == Outcome.UNAVAILABLE:
            raise ValueError("an answer is answered, uncertain or declined; an unavailable service is a Problem")
        object.__setattr__(self, "outcome", outcome)

    @property
    def refused(self) -> bool:
        """Whether nothing was answered: the question was declined."""
        return self.outcome == Outcome.DECLINED

    @property
    def text(self) -> str:
        """The reply as plain text, with `[n]` after each passage.

        An uncertain reply is its notice, then one passage a line, each after "- "; any other is its notice
        (if any) and then its passages in a row.
        """
        if self.outcome == Outcome.UNCERTAIN:
            return "\n".join([self.notice, *(f"- {p.cited}" for p in self.passages)])
        return "\n".join(t for t in (self.notice, " ".join(p.cited for p in self.passages)) if t)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by `ask --json` and the `/ask` endpoints."""
        return {
            "question": self.question,
            "answer": self.text,
            "outcome": str(self.outcome),
            "refused": self.refused,
            "unavailable": False,  # an unavailable service answers with a problem's JSON instead
            "notice": self.notice,
            "passages": [{"text": p.text, "cites": list(p.cites)} for p in self.passages],
            "language": self.language,
            "mode": self.mode,
            "fallback": self.fallback,
            "sources": [s.to_dict() for s in self.sources],
            "timings_ms": dict(self.timings_ms),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The inverse of `to_dict`: every field the JSON carries comes back.

        Raises:
            KeyError, TypeError, ValueError: `data` is not the JSON of an answer.
        """
        if not isinstance(data, dict):
            raise TypeError(f"an answer is a JSON object, not {type(data).__name__}")
        sources = tuple(Source(**(s | {"pages": tuple(Page(**p) for p in s.get("pages", ()))})) for s in data["sources"])
        passages = tuple(Passage(str(p["text"]), tuple(int(n) for n in p["cites"])) for p in data["passages"])
        return cls(question=data["question"], outcome=Outcome(data["outcome"]), passages=passages, sources=sources,
                   notice=str(data["notice"]), timings_ms=dict(data.get("timings_ms", {})),
                   language=str(data.get("language", "en")), mode=str(data.get("mode", "extractive")),
                   fallback=str(data.get("fallback", "")))


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
