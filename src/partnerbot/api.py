"""The HTTP API: `POST /api/ask`, the OpenAI-compatible `/v1/chat/completions` and `/v1/models`, and `/metrics`.

Every answer comes from `Assistant.ask` and is serialised by `Answer.to_dict()`, the `ask --json` shape.
Status codes: 400 or 422 for bad input (with a message naming the problem), 429 when the client is over
its rate limit (see `limits`), 503 with `unavailable: true` when the vector store is down.
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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .answer import Assistant
from .errors import InputError, PartnerbotError, StoreUnavailableError
from .phrases import UNAVAILABLE
from .telemetry import Metrics, outcome_of
from .types import Answer

log = logging.getLogger("partnerbot.api")
MODEL_ID = "partnerbot"
MAX_BODY = 64 * 1024
TROUBLE = "Sorry, something went wrong while answering. Please try again."
NOT_READY = "The assistant is not ready: its index is missing or out of date. Please try again later."
STARTED = int(time.time())


def error_json(question: str, message: str, unavailable: bool = False) -> dict[str, Any]:
    """The answer shape for a question that got no answer: refused, no sources, and an `error` message."""
    return {"question": question, "answer": message, "outcome": "unavailable" if unavailable else "declined",
            "refused": True, "unavailable": unavailable, "sources": [],
            "timings_ms": {}, "error": message}


def input_message(exc: InputError) -> str:
    text = str(exc)
    return f"{text[:1].upper()}{text[1:]}."


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
    question: str
    answer: str
    outcome: Literal["answered", "uncertain", "declined", "unavailable"] = Field(
        description="`answered`: confident, quoted sentences; `uncertain`: in scope but not confident, so `answer` "
                    "says so and lists the closest passages; `declined`: outside the sources, no sources; "
                    "`unavailable`: the document store cannot be reached.")
    refused: bool = Field(description="True when nothing was answered: `outcome` is `declined` or `unavailable`.")
    unavailable: bool
    language: str = Field(description="The question's language; a question not in English gets a reply in it.")
    mode: str = Field(description="`extractive` (quoted) or `generated` (written by a language model, each sentence checked).")
    fallback: str = Field(description="Why a generated answer fell back to quotes; empty otherwise.")
    sources: list[SourceOut]
    timings_ms: dict[str, float]
    error: str | None = Field(None, description="Only when the question could not be answered: why.")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class ChatRequest(BaseModel):
    """An OpenAI chat completion request. Sampling options are accepted and ignored: answers are extractive."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(examples=[MODEL_ID])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


# -- helpers -----------------------------------------------------------------------------------------------------
class Answering:
    """Runs `Assistant.ask` in worker threads (a bounded number at once) and counts what happened."""

    def __init__(self, assistant: Assistant, metrics: Metrics, concurrency: int):
        self.assistant = assistant
        self.metrics = metrics
        self.limiter = anyio.CapacityLimiter(concurrency)

    async def ask(self, endpoint: str, question: str, history: list[str],
                  fields: dict[str, Any]) -> tuple[int, Answer | None, str]:
        """(HTTP status, the answer or None, a message when there is no answer); `fields` go to the access log."""
        t0 = time.perf_counter()
        fields.update(question=question)
        answer: Answer | None = None
        try:
            answer = await anyio.to_thread.run_sync(self.assistant.ask, question, history, limiter=self.limiter)
        except InputError as exc:
            status, outcome, message = 400, "invalid", input_message(exc)
        except StoreUnavailableError:
            status, outcome, message = 503, "unavailable", UNAVAILABLE
        except PartnerbotError as exc:
            log.error("cannot answer: %s", exc)
            status, outcome, message = 503, "unavailable", NOT_READY
        except Exception:  # never a stack trace or a path for the public
            log.exception("unexpected error while answering")
            status, outcome, message = 500, "error", TROUBLE
        if answer is not None:
            outcome, message = outcome_of(answer), ""
            status = 503 if answer.unavailable else 200
            fields.update(index_version=answer.index_version)
        fields.update(endpoint=endpoint, outcome=outcome)
        self.metrics.observe(endpoint, outcome, time.perf_counter() - t0, answer)
        return status, answer, message


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
        if err.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
        elif err.get("type") == "missing" and where == "body":
            problems.append("the body is empty: send a JSON object")
        elif where == "body":  # a list, a string, or a body not sent as JSON at all
            problems.append("the body must be a JSON object, sent with Content-Type: application/json")
        else:
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def openai_error(status: int, message: str, kind: str, code: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}, **extra},
                        status_code=status)


def content_text(message: ChatMessage) -> str:
    """The text of a message; content parts other than text are refused.

    Raises:
        InputError: a part is not text.
    """
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    kinds = sorted({p.type for p in message.content if p.type != "text"})
    if kinds:
        raise InputError(f"only text content is supported, not {', '.join(kinds)}")
    return "\n".join(p.text or "" for p in message.content)


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


# -- routes ----------------------------------------------------------------------------------------------------------
def register(app: FastAPI, assistant: Assistant, metrics: Metrics, concurrency: int) -> None:
    """Add the API's routes and its error handlers to `app` (before the chat page is mounted at `/`)."""
    answering = Answering(assistant, metrics, concurrency)
    router = APIRouter()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = _validation_message(exc)
        endpoint = {"/api/ask": "api_ask", "/v1/chat/completions": "chat_completions"}.get(request.url.path)
        if endpoint:
            metrics.observe(endpoint, "invalid")
        request.scope.setdefault("state", {}).setdefault("log", {}).update(endpoint=endpoint, outcome="invalid")
        if request.url.path.startswith("/v1/"):
            return openai_error(400, message, "invalid_request_error")
        # Not JSON at all, or no body: 400. JSON that does not fit the schema: 422, naming the field.
        unreadable = any(e.get("type") == "json_invalid" or (e.get("type") == "missing" and tuple(e.get("loc", ())) ==
                         ("body",)) for e in exc.errors())
        status = 400 if unreadable else 422
        return JSONResponse({"error": message, "detail": jsonable(exc.errors())}, status_code=status)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        if request.method == "POST" and request.url.path.startswith(("/api/", "/v1/")):
            size = request.headers.get("content-length", "")
            if not size.isdigit() or int(size) > MAX_BODY:  # a chunked body of unknown size is refused too
                status = 411 if not size.isdigit() else 413
                message = f"the request body must be at most {MAX_BODY:,} bytes, with a Content-Length header"
                if request.url.path.startswith("/v1/"):
                    return openai_error(status, message, "invalid_request_error")
                return JSONResponse({"error": message}, status_code=status)
        return await call_next(request)

    @router.post("/api/ask", tags=["answers"], response_model=None, responses={
        200: {"model": AnswerOut, "description": "An answer, or a refusal (`refused: true`, no sources)."},
        400: {"description": "Unusable input: the `error` field says why."},
        422: {"description": "The body does not match the schema: `error` names the field."},
        429: {"description": "Over the rate limit: wait `Retry-After` seconds."},
        503: {"model": AnswerOut, "description": "The document store is unavailable (`unavailable: true`)."}})
    async def api_ask(body: AskRequest, request: Request) -> JSONResponse:
        """Answer a question from the corpus: the answer with `[n]` markers and its numbered, quoted sources."""
        log_fields = request.scope.setdefault("state", {}).setdefault("log", {})
        status, answer, message = await answering.ask("api_ask", body.question, body.history, log_fields)
        if answer is not None:
            return JSONResponse(answer.to_dict(), status_code=status)
        return JSONResponse(error_json(body.question[:200], message, unavailable=status == 503), status_code=status)

    @router.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The one model, `partnerbot`, in OpenAI's list format."""
        return {"object": "list", "data": [_model_card()]}

    @router.get("/v1/models/{model_id}", tags=["openai"], response_model=None)
    async def model(model_id: str) -> Any:
        if model_id != MODEL_ID:
            return openai_error(404, f"the model {model_id!r} does not exist; use {MODEL_ID!r}", "invalid_request_error",
                                "model_not_found")
        return _model_card()

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """OpenAI-compatible chat: the last user message is the question, earlier user messages the history.

        The reply's content is the answer with its `[n]` markers and a numbered list of sources; the
        structured answer (`ask --json` shape) is in the extra field `partnerbot`. `stream: true` sends
        server-sent events.
        """
        log_fields = request.scope.setdefault("state", {}).setdefault("log", {})
        if body.model != MODEL_ID:
            metrics.observe("chat_completions", "invalid")
            return openai_error(404, f"the model {body.model!r} does not exist; use {MODEL_ID!r}",
                                "invalid_request_error", "model_not_found")
        try:
            if body.messages[-1].role != "user":
                raise InputError(f"the last message must be from the user, not the {body.messages[-1].role}")
            question = content_text(body.messages[-1])
            history = [content_text(m) for m in body.messages[:-1] if m.role == "user"]
        except InputError as exc:
            metrics.observe("chat_completions", "invalid")
            return openai_error(400, input_message(exc), "invalid_request_error")
        status, answer, message = await answering.ask("chat_completions", question, history, log_fields)
        if answer is None or status != 200:
            kind = "invalid_request_error" if status == 400 else "server_error"
            extra = {"unavailable": True} if status == 503 else {}
            return openai_error(status, message or (answer.text if answer else TROUBLE), kind, None, **extra)
        data = answer.to_dict()
        content = chat_content(data)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.stream:
            return JSONResponse({
                "id": ident, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop", "logprobs": None}],
                "partnerbot": data})
        return StreamingResponse(_stream(ident, created, content, data), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics_route() -> Response:
        """Prometheus metrics: requests by endpoint and outcome, latency histograms, the active index version."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(router)


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": STARTED, "owned_by": "partnerbot"}


async def _stream(ident: str, created: int, content: str, data: dict[str, Any]) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(content):
        yield chunk({"content": piece})
    yield chunk({}, "stop", partnerbot=data)
    yield "data: [DONE]\n\n"


def jsonable(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without the input they echo (it may be large, or anything at all)."""
    return [{"type": e.get("type"), "loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg")} for e in errors]
