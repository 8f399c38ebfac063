"""The HTTP API: `POST /api/ask` and `/metrics` here, the OpenAI-compatible `/v1/*` in `openai_api`.

Every request's text is cleaned (`sanitize`) before anything else sees it; every result comes from
`replies.Asker` and is told by `replies`: an answer is the `ask --json` JSON with 200; a problem is
`{"error": {"code", "message", "field"}}` on `/api/*` and OpenAI's error object on `/v1/*`, with its status
(400 or 422 bad input, 411 or 413 body size, 429 rate limit, 503 unavailable, 500 anything unexpected).
No reply is ever plain text, and writing one never fails: its strings are scrubbed first.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from partnerbot.answering.assistant import Assistant
from partnerbot.errors import InputError
from partnerbot.phrases import TROUBLE
from partnerbot.sanitize import clean_history, clean_question
from partnerbot.serving import replies
from partnerbot.serving.replies import Asker, Result
from partnerbot.serving.telemetry import Metrics
from partnerbot.text import scrub
from partnerbot.types import Answer, Problem, ProblemKind, Source

log = logging.getLogger("partnerbot.api")
MAX_BODY = 64 * 1024
_ENDPOINTS = {"/api/ask": "api_ask", "/v1/chat/completions": "chat_completions"}


class SafeJSONResponse(JSONResponse):
    """JSON whose strings are scrubbed of lone surrogates before encoding, so writing a reply cannot fail."""

    def render(self, content: Any) -> bytes:
        return json.dumps(replies.safe(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def problem_response(problem: Problem, path: str) -> JSONResponse:
    """`problem` in the shape of the route at `path`: OpenAI's error object under `/v1/`, the project's elsewhere."""
    if path.startswith("/v1/"):
        status, data = replies.openai_error(problem)
    else:
        status, data = replies.status(problem), replies.body(problem)
    return SafeJSONResponse(data, status_code=status, headers=replies.headers(problem))


# -- request and response models (the OpenAPI schema at /docs) -------------------------------------------------
class AskRequest(BaseModel):
    """A question, and the earlier questions of the conversation (for follow-ups such as "When was it created?")."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="The question.", examples=["What is the Criminal Alien Program?"])
    history: list[str] = Field(default_factory=list, max_length=50, description="Earlier user questions, oldest first.")


class AnswerOut(BaseModel):
    """The `partnerbot ask --json` shape. Each `[n]` in `answer` is source `n`."""

    model_config = ConfigDict(extra="allow")
    question: str = Field(description="The question as it was read: cleaned of markup and control characters.")
    answer: str
    outcome: Literal["answered", "uncertain", "declined", "unavailable"] = Field(
        description="`answered`: confident, quoted sentences; `uncertain`: in scope but not confident, so `answer` "
                    "says so and lists the closest passages; `declined`: outside the sources, no sources. "
                    "(`unavailable` is the outcome of a 503, whose body is an `ErrorOut`.)")
    refused: bool = Field(description="True when nothing was answered (`outcome` is `declined`).")
    unavailable: bool = Field(description="Always false in an answer: an unavailable service answers 503.")
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


# -- helpers -----------------------------------------------------------------------------------------------------
def _field(loc: Any) -> str | None:
    """A pydantic error location as a field path: ("body", "history", 2) -> `history[2]`."""
    parts = [scrub(str(p))[:60] for p in tuple(loc)[1:]]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or None


def validation_problem(exc: RequestValidationError) -> Problem:
    """The problem of a body that is not JSON, or does not fit the schema; `field` is the first field at fault."""
    problems = []
    unreadable = False
    for err in exc.errors():
        where = _field(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            unreadable = True
            problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
        elif err.get("type") == "missing" and where is None:
            unreadable = True
            problems.append("the body is empty: send a JSON object")
        elif err.get("type") == "string_unicode":  # pydantic cannot read a name holding a lone surrogate
            problems.append("a name in the body is not valid Unicode")
        elif where is None:  # a list, a string, or a body not sent as JSON at all
            problems.append("the body must be a JSON object, sent with Content-Type: application/json")
        else:
            problems.append(f"{where}: {scrub(str(err.get('msg', 'invalid')))}")
    first = next((f for e in exc.errors() if e.get("type") != "json_invalid"  # its location is a character offset
                  and (f := _field(e.get("loc", ()))) is not None), None)
    kind = ProblemKind.INVALID_BODY if unreadable else ProblemKind.INVALID_REQUEST
    return Problem(kind, "Invalid request: " + "; ".join(problems) + ".", first)


def http_problem(exc: HTTPException) -> Problem:
    """The problem behind one of Starlette's or FastAPI's own HTTP errors (a body that is not UTF-8, a wrong method)."""
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return Problem(ProblemKind.INVALID_BODY, "Invalid request: the body is not valid UTF-8: send JSON encoded as UTF-8.")
    kind = {404: ProblemKind.NOT_FOUND, 405: ProblemKind.METHOD_NOT_ALLOWED, 413: ProblemKind.TOO_LARGE}.get(
        exc.status_code, ProblemKind.INVALID_BODY if exc.status_code < 500 else ProblemKind.INTERNAL)
    words = {ProblemKind.NOT_FOUND: "There is nothing at this address; see /docs for the API.",
             ProblemKind.METHOD_NOT_ALLOWED: "This address does not accept this method; see /docs for the API.",
             ProblemKind.TOO_LARGE: f"The request body must be at most {MAX_BODY:,} bytes.",
             ProblemKind.INTERNAL: TROUBLE}
    return Problem(kind, words.get(kind, "Invalid request: the body could not be read."))


def _log(request: Request) -> dict[str, Any]:
    """The access log's fields for this request (see `telemetry.AccessLogMiddleware`)."""
    return request.scope.setdefault("state", {}).setdefault("log", {})  # type: ignore[no-any-return]


# -- routes ----------------------------------------------------------------------------------------------------------
class Front:
    """What every API route shares: asking in worker threads (a bounded number at once), refusing with a problem,
    and the access log's fields."""

    def __init__(self, assistant: Assistant, metrics: Metrics, concurrency: int):
        self.assistant = assistant
        self.asker = Asker(assistant, metrics)
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.limit = assistant.settings.answering.max_question_chars

    async def answer(self, request: Request, endpoint: str, question: str, history: list[str]) -> Result:
        """The result for a cleaned question, counted under `endpoint`."""
        result: Result = await anyio.to_thread.run_sync(self.asker.ask, endpoint, question, history,
                                                        limiter=self.limiter)
        fields = _log(request)
        fields.update(endpoint=endpoint, outcome=replies.metric(result))
        if isinstance(result, Answer):
            fields.update(question=result.question, index_version=result.index_version)
        return result

    def refuse(self, request: Request, problem: Problem) -> JSONResponse:
        """A problem found before asking, counted and logged as such, in the shape of its route."""
        endpoint = _ENDPOINTS.get(request.url.path.rstrip("/"))
        if endpoint:
            self.asker.count(endpoint, problem)
            _log(request).update(endpoint=endpoint, outcome=replies.metric(problem))
        return problem_response(problem, request.url.path)


def register(app: FastAPI, assistant: Assistant, metrics: Metrics, concurrency: int) -> None:
    """Add the API's routes and its error handlers to `app` (before the chat page is mounted at `/`)."""
    from partnerbot.serving.openai_api import routes as openai_routes  # it builds on this module's `Front`

    front = Front(assistant, metrics, concurrency)
    refuse = front.refuse
    router = APIRouter()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return refuse(request, validation_problem(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if not request.url.path.startswith(("/api/", "/v1/")):
            return await http_exception_handler(request, exc)
        return refuse(request, http_problem(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering %s", request.url.path, exc_info=exc)  # the path only: no user text
        return problem_response(Problem(ProblemKind.INTERNAL, TROUBLE), request.url.path)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        if request.method == "POST" and request.url.path.startswith(("/api/", "/v1/")):
            size = request.headers.get("content-length", "")
            if not size.isdigit() or int(size) > MAX_BODY:  # a chunked body of unknown size is refused too
                kind = ProblemKind.LENGTH_REQUIRED if not size.isdigit() else ProblemKind.TOO_LARGE
                message = f"The request body must be at most {MAX_BODY:,} bytes, with a Content-Length header."
                return refuse(request, Problem(kind, message))
        return await call_next(request)

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
            return refuse(request, input_problem(exc))
        result = await front.answer(request, "api_ask", question, history)
        return SafeJSONResponse(replies.body(result), status_code=replies.status(result), headers=replies.headers(result))

    @router.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics_route() -> Response:
        """Prometheus metrics: requests by endpoint and outcome, latency histograms, the active index version."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    fallback = APIRouter()  # a router of its own, after the others: their routes are tried first

    @fallback.api_route("/api/{rest:path}", include_in_schema=False, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @fallback.api_route("/v1/{rest:path}", include_in_schema=False, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def nowhere(request: Request) -> JSONResponse:
        # Without these, Gradio's page (mounted at `/`) would answer unknown API addresses in its own shape.
        wrong_method = any(r.matches(request.scope)[0] == Match.PARTIAL for r in request.app.router.routes)
        return refuse(request, http_problem(HTTPException(405 if wrong_method else 404)))

    app.include_router(openai_routes(front))
    app.include_router(router)
    app.include_router(fallback)


def input_problem(exc: InputError) -> Problem:
    """The problem of unusable input, its message a sentence."""
    text = str(exc)
    return Problem(ProblemKind.INPUT, f"{text[:1].upper()}{text[1:]}.", exc.field)


