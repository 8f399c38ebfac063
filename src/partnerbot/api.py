"""The HTTP API: `POST /api/ask`, the OpenAI-compatible `/v1/chat/completions` and `/v1/models`, and `/metrics`.

Every request's text is cleaned (`sanitize`) before anything else sees it; every result comes from
`replies.Asker` and is told by `replies`: an answer is the `ask --json` JSON with 200; a problem is
`{"error": {"code", "message", "field"}}` on `/api/*` and OpenAI's error object on `/v1/*`, with its status
(400 or 422 bad input, 411 or 413 body size, 429 rate limit, 503 unavailable, 500 anything unexpected).
No reply is ever plain text, and writing one never fails: its strings are scrubbed first.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from . import replies
from .answer import Assistant
from .embed import count_tokens
from .errors import InputError
from .phrases import TROUBLE
from .replies import Asker, Result
from .sanitize import clean_history, clean_parts, clean_question, clean_text, scrub
from .telemetry import Metrics
from .types import Answer, Problem, ProblemKind

log = logging.getLogger("partnerbot.api")
MODEL_ID = "partnerbot"
MAX_BODY = 64 * 1024
STARTED = int(time.time())
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


class SourceOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    n: int
    doc_id: str
    title: str
    url: str
    date: str
    section: str
    quote: str = Field(description="Verbatim from the document, at [start, end).")
    start: int
    end: int
    score: float = Field(description="The answerer's score for the sentence (for the fitted selector, the probability that it answers).")
    doc_url: str = Field(description="The document's own page; `url` is the page that supports the quote.")
    page_title: str = Field(description="The title of the page at `url`, if known.")
    pages: list[dict[str, str]] = Field(description="Every page the quote's footnotes cite ({url, date, title}), `url`'s first.")


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
    sources: list[SourceOut]
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


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = Field(False, description="Send a last chunk with `usage` (and no choices) before `[DONE]`.")


_IGNORED = "Accepted and ignored: answers are quoted from the sources, not sampled."


class ChatRequest(BaseModel):
    """An OpenAI chat completion request.

    The last message must be the user's: it is the question, and the earlier user messages are the history;
    system, developer, assistant and tool messages are read by no one. Answers are quoted, not sampled, so
    every sampling option is accepted and ignored: `temperature`, `top_p`, `max_tokens`,
    `max_completion_tokens`, `presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs`, `top_logprobs`,
    `seed`, `stop`, `user`, `response_format`, `tools`, `tool_choice`, `parallel_tool_calls`, `metadata`,
    `store`, `service_tier` and any other field. `n` must be 1: there is one answer.
    """

    model_config = ConfigDict(extra="allow")
    model: str = Field(examples=[MODEL_ID])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = Field(None, description="With `stream`: `include_usage` is honoured.")
    n: int | None = Field(None, description="Must be 1 (or left out): partnerbot gives one answer.")
    temperature: float | None = Field(None, description=_IGNORED)
    top_p: float | None = Field(None, description=_IGNORED)
    max_tokens: int | None = Field(None, description=_IGNORED + " An answer is never cut short.")
    max_completion_tokens: int | None = Field(None, description=_IGNORED + " An answer is never cut short.")
    presence_penalty: float | None = Field(None, description=_IGNORED)
    frequency_penalty: float | None = Field(None, description=_IGNORED)
    seed: int | None = Field(None, description=_IGNORED + " The same question always gets the same answer.")
    stop: str | list[str] | None = Field(None, description=_IGNORED)


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
        elif where is None:  # a list, a string, or a body not sent as JSON at all
            problems.append("the body must be a JSON object, sent with Content-Type: application/json")
        else:
            problems.append(f"{where}: {scrub(str(err.get('msg', 'invalid')))}")
    first = next((f for e in exc.errors() if (f := _field(e.get("loc", ()))) is not None), None)
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


def message_text(message: ChatMessage, i: int, limit: int) -> str:
    """The cleaned text of message `i`; content parts other than text are refused.

    Raises:
        InputError: a part is not text, or a text is far too long (`field` names it).
    """
    field = f"messages[{i}].content"
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return clean_text(message.content, field, limit * 4, "the message")
    kinds = sorted({scrub(p.type)[:40] for p in message.content if p.type != "text"})
    if kinds:
        raise InputError(f"only text content is supported, not {', '.join(kinds)}", field=field)
    return clean_parts([p.text or "" for p in message.content], field, limit * 4)


def chat_content(data: dict[str, Any]) -> str:
    """The reply text: the answer with its `[n]` markers, then the numbered sources."""
    lines = [data["answer"]]
    if data["sources"]:
        lines.append("\nSources:")
        lines += [f"[{s['n']}] {s['title']}, section \"{s['section']}\" (as of {s['date']}): {s['url']}"
                  for s in data["sources"]]
    return "\n".join(lines)


def _pieces(text: str) -> list[str]:
    """The text in a few pieces that join back to it exactly (for streaming)."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + 4]) for i in range(0, len(words), 4)] or [""]


def _log(request: Request) -> dict[str, Any]:
    """The access log's fields for this request (see `telemetry.AccessLogMiddleware`)."""
    return request.scope.setdefault("state", {}).setdefault("log", {})  # type: ignore[no-any-return]


# -- routes ----------------------------------------------------------------------------------------------------------
def register(app: FastAPI, assistant: Assistant, metrics: Metrics, concurrency: int) -> None:
    """Add the API's routes and its error handlers to `app` (before the chat page is mounted at `/`)."""
    asker = Asker(assistant, metrics)
    limiter = anyio.CapacityLimiter(concurrency)
    limit = assistant.settings.max_question_chars
    router = APIRouter()

    async def answer(request: Request, endpoint: str, question: str, history: list[str]) -> Result:
        """The result for a cleaned question, asked in a worker thread (a bounded number at once)."""
        result: Result = await anyio.to_thread.run_sync(asker.ask, endpoint, question, history, limiter=limiter)
        fields = _log(request)
        fields.update(endpoint=endpoint, outcome=replies.metric(result))
        if isinstance(result, Answer):
            fields.update(question=result.question, index_version=result.index_version)
        return result

    def refuse(request: Request, problem: Problem) -> JSONResponse:
        """A problem found before asking, counted and logged as such."""
        endpoint = _ENDPOINTS.get(request.url.path.rstrip("/"))
        if endpoint:
            asker.count(endpoint, problem)
            _log(request).update(endpoint=endpoint, outcome=replies.metric(problem))
        return problem_response(problem, request.url.path)

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
            question, history = clean_question(body.question, limit), clean_history(body.history, limit)
        except InputError as exc:
            return refuse(request, _input_problem(exc))
        result = await answer(request, "api_ask", question, history)
        return SafeJSONResponse(replies.body(result), status_code=replies.status(result), headers=replies.headers(result))

    @router.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The one model, `partnerbot`, in OpenAI's list format."""
        return {"object": "list", "data": [_model_card()]}

    @router.get("/v1/models/{model_id}", tags=["openai"], response_model=None)
    async def model(model_id: str, request: Request) -> Any:
        if model_id != MODEL_ID:
            return refuse(request, Problem(ProblemKind.NOT_FOUND, f"The model {scrub(model_id)[:100]!r} does not "
                                           f"exist; use {MODEL_ID!r}.", "model"))
        return _model_card()

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """OpenAI-compatible chat: the last user message is the question, earlier user messages the history.

        The reply's content is the answer with its `[n]` markers and a numbered list of sources; the
        structured answer (`ask --json` shape) is in the extra field `partnerbot`. `stream: true` sends
        server-sent events. `usage` counts tokens with the embedding model's tokenizer (WordPiece, without
        its [CLS] and [SEP]): `prompt_tokens` the user messages read (the question and its history),
        `completion_tokens` the reply's content.
        """
        if body.model != MODEL_ID:
            return refuse(request, Problem(ProblemKind.NOT_FOUND, f"The model {scrub(body.model)[:100]!r} does not "
                                           f"exist; use {MODEL_ID!r}.", "model"))
        if body.n is not None and body.n != 1:
            return refuse(request, Problem(ProblemKind.INPUT, f"n must be 1: partnerbot gives one answer, not {body.n}.",
                                           "n"))
        try:
            last = len(body.messages) - 1
            if body.messages[last].role != "user":
                raise InputError(f"the last message must be from the user, not the {body.messages[last].role}",
                                 field=f"messages[{last}].role")
            texts = [message_text(m, i, limit) for i, m in enumerate(body.messages) if m.role == "user"]
            question = clean_question(texts[-1], limit, f"messages[{last}].content")
            history = clean_history(texts[:-1], limit, "messages")
        except InputError as exc:
            return refuse(request, _input_problem(exc))
        result = await answer(request, "chat_completions", question, history)
        if isinstance(result, Problem):
            return problem_response(result, request.url.path)
        data = result.to_dict()
        content = chat_content(data)
        usage = await anyio.to_thread.run_sync(_usage, assistant, [*history, question], content)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.stream:
            return SafeJSONResponse({
                "id": ident, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": usage, "partnerbot": data})
        include = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_stream(ident, created, content, data, usage if include else None),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                          "X-Accel-Buffering": "no"})

    @router.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics_route() -> Response:
        """Prometheus metrics: requests by endpoint and outcome, latency histograms, the active index version."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.api_route("/api/{rest:path}", include_in_schema=False, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @router.api_route("/v1/{rest:path}", include_in_schema=False, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def nowhere(request: Request) -> JSONResponse:
        # Without these, Gradio's page (mounted at `/`) would answer unknown API addresses in its own shape.
        return refuse(request, http_problem(HTTPException(404)))

    app.include_router(router)


def _input_problem(exc: InputError) -> Problem:
    text = str(exc)
    return Problem(ProblemKind.INPUT, f"{text[:1].upper()}{text[1:]}.", exc.field)


def _usage(assistant: Assistant, prompt: list[str], completion: str) -> dict[str, int]:
    """OpenAI's `usage`, counted with the embedding model's tokenizer."""
    prompt_tokens = sum(count_tokens(assistant.settings, t) for t in prompt)
    completion_tokens = count_tokens(assistant.settings, completion)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": STARTED, "owned_by": "partnerbot"}


async def _stream(ident: str, created: int, content: str, data: dict[str, Any],
                  usage: dict[str, int] | None) -> AsyncIterator[str]:
    """The reply as server-sent events; with `usage`, every chunk says `"usage": null` and a last one carries it."""
    extra = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra, **more}
        return f"data: {json.dumps(replies.safe(body), ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(content):
        yield chunk({"content": piece})
    yield chunk({}, "stop", partnerbot=data)
    if usage is not None:
        last = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [], "usage": usage}
        yield f"data: {json.dumps(last)}\n\n"
    yield "data: [DONE]\n\n"
