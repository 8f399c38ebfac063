"""The OpenAI-compatible API: `POST /v1/chat/completions` (plain or streamed) and `GET /v1/models`.

The last message must be the user's: it is the question, and the earlier user messages are its history.
Each message's text (each content part's) is cleaned by `sanitize` before anything else sees it, and a
problem is OpenAI's error object (`replies.openai_error`). Answers are quoted, not sampled: the sampling
options are accepted and ignored (each is listed in `ChatRequest`), and `n` must be 1.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from partnerbot.answering.assistant import Assistant
from partnerbot.answers import Answer, Problem, ProblemKind
from partnerbot.errors import InputError
from partnerbot.index.embed import count_tokens
from partnerbot.sanitize import clean_history, clean_parts, clean_question, clean_text
from partnerbot.serving import replies
from partnerbot.serving.web import Front, SafeJSONResponse, problem_response
from partnerbot.text import scrub

MODEL_ID = "partnerbot"
STARTED = int(time.time())


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


def chat_content(answer: Answer) -> str:
    """The reply text: the answer's text (with its `[n]` markers), then the numbered sources."""
    lines = [answer.text]
    if answer.sources:
        lines.append("\nSources:")
        lines += [f"[{s.n}] {s.title}, section \"{s.section}\" (as of {s.date}): {s.url}" for s in answer.sources]
    return "\n".join(lines)


def _pieces(text: str) -> list[str]:
    """The text in a few pieces that join back to it exactly (for streaming)."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + 4]) for i in range(0, len(words), 4)] or [""]


def routes(front: Front) -> APIRouter:
    """The `/v1` routes, asking through `front`."""
    router = APIRouter()

    @router.api_route("/v1/models", methods=["GET", "HEAD"], tags=["openai"])
    async def models() -> dict[str, Any]:
        """The one model, `partnerbot`, in OpenAI's list format."""
        return {"object": "list", "data": [_model_card()]}

    @router.api_route("/v1/models/{model_id}", methods=["GET", "HEAD"], tags=["openai"], response_model=None)
    async def model(model_id: str, request: Request) -> Any:
        if model_id != MODEL_ID:
            return front.refuse(request, _no_model(model_id))
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
            return front.refuse(request, _no_model(body.model))
        if body.n is not None and body.n != 1:
            return front.refuse(request, Problem(ProblemKind.INPUT, f"n must be 1: partnerbot gives one answer, "
                                                 f"not {body.n}.", "n"))
        try:
            last = len(body.messages) - 1
            if body.messages[last].role != "user":
                raise InputError(f"the last message must be from the user, not the {body.messages[last].role}",
                                 field=f"messages[{last}].role")
            texts = [message_text(m, i, front.limit) for i, m in enumerate(body.messages) if m.role == "user"]
            question = clean_question(texts[-1], front.limit, f"messages[{last}].content")
            history = clean_history(texts[:-1], front.limit, "messages")
        except InputError as exc:
            return front.refuse(request, replies.problem(exc))
        result = await front.answer(request, "chat_completions", question, history)
        if isinstance(result, Problem):
            return problem_response(result, request.url.path)
        data = result.to_dict()
        content = chat_content(result)
        usage = await anyio.to_thread.run_sync(_usage, front.assistant, [*history, question], content)
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

    return router


def _no_model(name: str) -> Problem:
    return Problem(ProblemKind.NOT_FOUND, f"The model {scrub(name)[:100]!r} does not exist; use {MODEL_ID!r}.", "model")


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
