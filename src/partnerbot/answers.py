"""What asking gives: an `Answer` in its parts (outcome, notice, passages, sources), or a `Problem` to tell.

The values every front end shares: `answering` makes answers, `serving` and the CLI tell them and problems,
`evaluation` checks them. Corpus and index values are in `types`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from partnerbot.phrases import cite
from partnerbot.types import Dropped, Page, Source


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
