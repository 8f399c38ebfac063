"""The one mapping from what asking gives, an `Answer` or an error, to what a client is told.

Every front end (the chat page, Gradio's `/ask`, `/api/ask`, the OpenAI endpoint, `ask`, `chat` and
`ask --url`) asks through `ask`, which turns the errors `Assistant.ask` raises into a `Problem` by their type
(`problem`), and turns the result into an HTTP status, a JSON body, a message or an exit code here, nowhere
else. `asker.Asker` adds the rate limit and the metrics for the server's front ends.

The JSON of a problem, on `/api/ask`, Gradio's `/ask` and `ask --json`:
`{"error": {"code", "message", "field"}}`, plus `"unavailable": true` (with `"outcome": "unavailable"`)
when the service cannot answer anyone, or `"rate_limited": true` and `"retry_after_s"` over the rate limit.
On `/v1/*` it is OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from partnerbot.answers import Answer, Outcome, Problem, ProblemKind
from partnerbot.errors import InputError, PartnerbotError, StoreError
from partnerbot.phrases import NOT_READY, TROUBLE, UNAVAILABLE
from partnerbot.text import scrub

if TYPE_CHECKING:  # `ask --url` reads replies without loading the answering stack
    from partnerbot.answering.assistant import Assistant

log = logging.getLogger("partnerbot.replies")
Result = Answer | Problem

# HTTP status of each kind of problem on `/api/ask`, and OpenAI's error type for it on `/v1/*`.
_STATUS = {
    ProblemKind.INPUT: 400, ProblemKind.INVALID_BODY: 400, ProblemKind.INVALID_REQUEST: 422,
    ProblemKind.TOO_LARGE: 413, ProblemKind.LENGTH_REQUIRED: 411, ProblemKind.NOT_FOUND: 404,
    ProblemKind.METHOD_NOT_ALLOWED: 405, ProblemKind.RATE_LIMITED: 429, ProblemKind.UNAVAILABLE: 503,
    ProblemKind.NOT_READY: 503, ProblemKind.INTERNAL: 500,
}
_OPENAI_TYPE = {ProblemKind.RATE_LIMITED: "rate_limit_exceeded", ProblemKind.UNAVAILABLE: "server_error",
                ProblemKind.NOT_READY: "server_error", ProblemKind.INTERNAL: "server_error"}
# The outcome label of `partnerbot_requests_total` (telemetry.OUTCOMES); any other problem is "invalid".
_ANSWER_METRIC = {Outcome.ANSWERED: "answered", Outcome.UNCERTAIN: "uncertain", Outcome.DECLINED: "refused"}
_PROBLEM_METRIC = {ProblemKind.RATE_LIMITED: "rate_limited", ProblemKind.UNAVAILABLE: "unavailable",
                   ProblemKind.NOT_READY: "unavailable", ProblemKind.INTERNAL: "error"}


def problem(exc: Exception) -> Problem:
    """The problem a client is told of for an error raised while asking, by the error's type.

    `InputError` is the client's (its message, and the field at fault); `StoreError` (the store failed or
    cannot be reached) makes the service unavailable for now; any other `PartnerbotError` means no usable
    index, reader or writer (not ready). Anything else is unexpected: logged with its trace, never shown.
    """
    if isinstance(exc, InputError):
        text = str(exc)
        return Problem(ProblemKind.INPUT, f"{text[:1].upper()}{text[1:]}.", exc.field)
    if isinstance(exc, StoreError):
        return Problem(ProblemKind.UNAVAILABLE, UNAVAILABLE, detail=str(exc))
    if isinstance(exc, PartnerbotError):
        return Problem(ProblemKind.NOT_READY, NOT_READY, detail=str(exc))
    log.error("unexpected error while answering", exc_info=exc)  # never a stack trace or a path for the public
    return Problem(ProblemKind.INTERNAL, TROUBLE)


def ask(assistant: Assistant, question: Any, history: Any) -> Result:
    """`Assistant.ask`, with every error it raises turned into its `problem`, never raised."""
    try:
        return assistant.ask(question, history if isinstance(history, (list, tuple)) else [])
    except Exception as exc:
        return problem(exc)


def rate_limited(retry_after: float) -> Problem:
    """The problem of a client over its rate limit, with the polite words for it."""
    seconds = max(1, math.ceil(retry_after))
    return Problem(ProblemKind.RATE_LIMITED, f"You are asking faster than this service can answer everyone. "
                   f"Please wait {seconds} second{'s' if seconds != 1 else ''} and try again.",
                   retry_after=retry_after)


def status(result: Result) -> int:
    """The HTTP status of `result` on `/api/ask` (200 for every answer, declined and uncertain ones too)."""
    return 200 if isinstance(result, Answer) else _STATUS[result.kind]


def headers(result: Result) -> dict[str, str]:
    """Extra response headers: `Retry-After` over the rate limit."""
    if isinstance(result, Problem) and result.kind == ProblemKind.RATE_LIMITED:
        return {"Retry-After": str(max(1, math.ceil(result.retry_after)))}
    return {}


def body(result: Result) -> dict[str, Any]:
    """The JSON of `result`: the answer (`Answer.to_dict`), or the problem's error object (see the module's doc)."""
    if isinstance(result, Answer):
        return result.to_dict()
    data: dict[str, Any] = {"error": {"code": str(result.kind), "message": result.message, "field": result.field}}
    if result.outcome is not None:
        data |= {"outcome": str(result.outcome), "unavailable": True}
    if result.kind == ProblemKind.RATE_LIMITED:
        data |= {"rate_limited": True, "retry_after_s": max(1, math.ceil(result.retry_after))}
    return data


def openai_error(problem: Problem) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OpenAI's error object for `problem` on `/v1/*` (a request that does not fit is a 400)."""
    code = 400 if problem.kind == ProblemKind.INVALID_REQUEST else _STATUS[problem.kind]
    data: dict[str, Any] = {"error": {"message": problem.message, "type": _OPENAI_TYPE.get(problem.kind,
                                                                                        "invalid_request_error"),
                                      "param": problem.field, "code": str(problem.kind)}}
    if problem.outcome is not None:
        data["unavailable"] = True
    return code, data


def message(result: Result) -> str:
    """What a person is told: the answer's text, or the problem's message."""
    return result.text if isinstance(result, Answer) else result.message


def metric(result: Result) -> str:
    """The outcome label the request is counted under in `partnerbot_requests_total`."""
    if isinstance(result, Answer):
        return _ANSWER_METRIC[result.outcome]
    return _PROBLEM_METRIC.get(result.kind, "invalid")


def exit_code(result: Result) -> int:
    """The CLI's exit code, by the kind of problem: 0 for an answer, 4 when the store (or the server) is
    unavailable, 1 for any other problem."""
    if isinstance(result, Answer):
        return 0
    return 4 if result.kind == ProblemKind.UNAVAILABLE else 1


def from_body(data: Any, http_status: int) -> Result:
    """The inverse of `body`, for a reply read back from a server.

    Raises:
        KeyError, TypeError, ValueError: `data` is neither an answer nor a problem of this version of partnerbot.
    """
    if http_status == 200:
        return Answer.from_dict(data)
    error = data["error"]
    return Problem(ProblemKind(error["code"]), str(error["message"]), error.get("field"),
                   retry_after=float(data.get("retry_after_s", 0)))


def safe(value: Any) -> Any:
    """`value` (JSON data) with every string scrubbed, so a response writer can always encode it."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe(v) for v in value]
    return value
