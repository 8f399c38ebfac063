"""HTTP plumbing the API routes share: the error object, problem responses, the body limit, and `Front`.

Every problem on `/api/*` and `/v1/*` is JSON in the shape of its route (`problem_response`): the project's
`{"error": {"code", "message", "field"}}` on `/api/*`, OpenAI's error object on `/v1/*`, for any method
(HEAD and OPTIONS included). No reply is ever plain text, and writing one never fails: its strings are
scrubbed first. `install` adds the error handlers and the body limit to an app; `fallback` is the router
that answers, in that shape, every address and method the API does not have.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from partnerbot.answering.assistant import Assistant
from partnerbot.answers import Answer, Problem, ProblemKind
from partnerbot.phrases import TROUBLE
from partnerbot.serving import replies
from partnerbot.serving.asker import Asker
from partnerbot.serving.replies import Result
from partnerbot.serving.telemetry import Metrics, endpoint_of
from partnerbot.text import scrub

log = logging.getLogger("partnerbot.api")
MAX_BODY = 64 * 1024
API_PREFIXES = ("/api/", "/v1/")
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class SafeJSONResponse(JSONResponse):
    """JSON whose strings are scrubbed of lone surrogates before encoding, so writing a reply cannot fail."""

    def render(self, content: Any) -> bytes:
        return json.dumps(replies.safe(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def problem_response(problem: Problem, path: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """`problem` in the shape of the route at `path`: OpenAI's error object under `/v1/`, the project's elsewhere."""
    if path.startswith("/v1/"):
        status, data = replies.openai_error(problem)
    else:
        status, data = replies.status(problem), replies.body(problem)
    return SafeJSONResponse(data, status_code=status, headers=replies.headers(problem) | (headers or {}))


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


def log_fields(request: Request) -> dict[str, Any]:
    """The access log's fields for this request (see `telemetry.AccessLogMiddleware`)."""
    return request.scope.setdefault("state", {}).setdefault("log", {})  # type: ignore[no-any-return]


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
        fields = log_fields(request)
        fields.update(endpoint=endpoint, outcome=replies.metric(result))
        if isinstance(result, Answer):
            fields.update(question=result.question, index_version=result.index_version)
        return result

    def refuse(self, request: Request, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
        """A problem found before asking, counted and logged as such, in the shape of its route."""
        endpoint = endpoint_of(request.url.path)
        if endpoint != "other":
            self.asker.count(endpoint, problem)
            log_fields(request).update(endpoint=endpoint, outcome=replies.metric(problem))
        return problem_response(problem, request.url.path, headers)


def install(app: FastAPI, front: Front) -> None:
    """Add the API's error handlers and its body limit to `app`: every problem on `/api/*` and `/v1/*` is JSON."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return front.refuse(request, validation_problem(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if not request.url.path.startswith(API_PREFIXES):
            return await http_exception_handler(request, exc)
        return front.refuse(request, http_problem(exc), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering %s", request.url.path, exc_info=exc)  # the path only: no user text
        return problem_response(Problem(ProblemKind.INTERNAL, TROUBLE), request.url.path)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        if request.method == "POST" and request.url.path.startswith(API_PREFIXES):
            size = request.headers.get("content-length", "")
            if not size.isdigit() or int(size) > MAX_BODY:  # a chunked body of unknown size is refused too
                kind = ProblemKind.LENGTH_REQUIRED if not size.isdigit() else ProblemKind.TOO_LARGE
                message = f"The request body must be at most {MAX_BODY:,} bytes, with a Content-Length header."
                return front.refuse(request, Problem(kind, message))
        return await call_next(request)


def fallback(front: Front, *routers: APIRouter) -> APIRouter:
    """A router for every address and method under `/api/` and `/v1/` that `routers` do not answer: 404, or 405
    with `Allow` when the address exists for other methods, in the route's error shape. Include it after
    `routers`, whose routes are tried first."""
    known = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]
    router = APIRouter()

    @router.api_route("/api/{rest:path}", include_in_schema=False, methods=METHODS)
    @router.api_route("/v1/{rest:path}", include_in_schema=False, methods=METHODS)
    async def nowhere(request: Request) -> JSONResponse:
        # Without these, Gradio's page (mounted at `/`) would answer unknown API addresses in its own shape.
        allowed = sorted({m for r in known if r.matches(request.scope)[0] != Match.NONE for m in r.methods or ()})
        if allowed:
            return front.refuse(request, http_problem(HTTPException(405)), {"Allow": ", ".join(allowed)})
        return front.refuse(request, http_problem(HTTPException(404)))

    return router
