"""The HTTP API's own routes: `POST /api/ask` and `GET /metrics` (the OpenAI-compatible `/v1/*` is `openai_api`).

Every request's text is cleaned (`sanitize`) before anything else sees it; every result comes from
`asker.Asker` and is told by `replies`: an answer is the `ask --json` JSON with 200; a problem is
`{"error": {"code", "message", "field"}}`, with its status (400 or 422 bad input, 411 or 413 body size, 429
rate limit, 503 unavailable, 500 anything unexpected), through the plumbing in `web`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from partnerbot.errors import InputError
from partnerbot.sanitize import HISTORY_TURNS, clean_history, clean_question
from partnerbot.serving import replies
from partnerbot.serving.telemetry import Metrics
from partnerbot.serving.web import MAX_BODY, Front, SafeJSONResponse
from partnerbot.types import Source


# -- request and response models (the OpenAPI schema at /docs) -------------------------------------------------
class AskRequest(BaseModel):
    """A question, and the earlier questions of the conversation (for follow-ups such as "When was it created?")."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="The question.", examples=["What is the Criminal Alien Program?"])
    history: list[str] = Field(default_factory=list, description=(
        f"Earlier user questions, oldest first. Any number may be sent (within the {MAX_BODY:,}-byte body); "
        f"the last {HISTORY_TURNS} are read, as on every front end."))


class PassageOut(BaseModel):
    """One sentence the answer shows."""

    text: str = Field(description="The sentence, without its citation markers.")
    cites: list[int] = Field(description="The numbers `n` of the sources it cites (`[n]` after it in `answer`).")


class AnswerOut(BaseModel):
    """The `partnerbot ask --json` shape. Each `[n]` in `answer` is source `n`."""

    model_config = ConfigDict(extra="allow")
    question: str = Field(description="The question as it was read: cleaned of markup and control characters.")
    answer: str = Field(description="The reply as plain text: `notice`, then the passages, each followed by its "
                                    "`[n]` (one per line after \"- \" when `uncertain`).")
    outcome: Literal["answered", "uncertain", "declined", "unavailable"] = Field(
        description="`answered`: confident, quoted sentences; `uncertain`: in scope but not confident, so `answer` "
                    "says so and lists the closest passages; `declined`: outside the sources, no sources. "
                    "(`unavailable` is the outcome of a 503, whose body is an `ErrorOut`.)")
    refused: bool = Field(description="True when nothing was answered (`outcome` is `declined`).")
    unavailable: bool = Field(description="Always false in an answer: an unavailable service answers 503.")
    notice: str = Field(description="What the reply says before any passage: the \"not sure\" heading of an "
                                    "uncertain reply, the whole of a decline; empty when answered.")
    passages: list[PassageOut] = Field(description="The sentences shown, in order, each with the sources it cites.")
    language: str = Field(description="The question's language; a question not in English gets a reply in it.")
    mode: str = Field(description="`extractive` (quoted) or `generated` (written by a language model, each sentence checked).")
    fallback: str = Field(description="Why a generated answer fell back to quotes; empty otherwise.")
    sources: list[Source]  # documented from the dataclass itself, so the schema cannot fall behind it
    timings_ms: dict[str, float]


class ErrorDetail(BaseModel):
    code: str = Field(description="What went wrong: invalid_input, invalid_request, invalid_body, body_too_large, "
                                  "length_required, not_found, method_not_allowed, rate_limited, unavailable, "
                                  "not_ready or internal_error.")
    message: str = Field(description="What went wrong and what to do, for a person.")
    field: str | None = Field(description="The piece of the request at fault (`question`, `history[2]`), if one is.")


class ErrorOut(BaseModel):
    """Every 4xx and 5xx reply of `/api/ask`."""

    model_config = ConfigDict(extra="allow")
    error: ErrorDetail
    unavailable: bool | None = Field(None, description="True (with `outcome: unavailable`) on a 503: try again later.")
    rate_limited: bool | None = Field(None, description="True on a 429; `retry_after_s` says when to try again.")


def routes(front: Front, metrics: Metrics) -> APIRouter:
    """`POST /api/ask`, asking through `front`, and `GET /metrics` from `metrics`."""
    router = APIRouter()

    @router.post("/api/ask", tags=["answers"], response_model=None, responses={
        200: {"model": AnswerOut, "description": "An answer: answered, uncertain, or declined (`refused: true`, no sources)."},
        400: {"model": ErrorOut, "description": "Unusable input, or a body that is not JSON or not UTF-8: "
                                                "`error.field` names the piece at fault."},
        413: {"model": ErrorOut, "description": f"The body is over {MAX_BODY:,} bytes."},
        422: {"model": ErrorOut, "description": "The body does not match the schema: `error.field` names the field."},
        429: {"model": ErrorOut, "description": "Over the rate limit: wait `Retry-After` seconds."},
        500: {"model": ErrorOut, "description": "Something unexpected failed while answering this question."},
        503: {"model": ErrorOut, "description": "The document store or the index is unavailable (`unavailable: true`)."}})
    async def api_ask(body: AskRequest, request: Request) -> JSONResponse:
        """Answer a question from the corpus: the answer with `[n]` markers and its numbered, quoted sources."""
        try:
            question = clean_question(body.question, front.limit)
            history = clean_history(body.history, front.limit)
        except InputError as exc:
            return front.refuse(request, replies.problem(exc))
        result = await front.answer(request, "api_ask", question, history)
        return SafeJSONResponse(replies.body(result), status_code=replies.status(result), headers=replies.headers(result))

    @router.api_route("/metrics", methods=["GET", "HEAD"], tags=["operations"], response_class=Response)
    async def metrics_route() -> Response:
        """Prometheus metrics: requests by endpoint and outcome, latency histograms, the active index version."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
