"""The server: one FastAPI app with the chat page, the HTTP API, `/healthz` and the middleware, served by uvicorn.

`build_app` composes the parts; `serve` loads the model and the index, warms up, and listens.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from partnerbot import __version__
from partnerbot.answering import unanswered
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.retrieve import Retriever
from partnerbot.errors import PartnerbotError, StoreError, StoreUnavailableError
from partnerbot.phrases import EXAMPLE_QUESTIONS
from partnerbot.serving import api, connections, documents, openai_api, replies, web
from partnerbot.serving.limits import RateLimiter, RateLimitMiddleware
from partnerbot.serving.page import CSS, HEAD, THEME, build_blocks
from partnerbot.serving.telemetry import AccessLogMiddleware, Metrics, configure_access_log, endpoint_of
from partnerbot.settings import Settings

log = logging.getLogger("partnerbot.ui")

# The developers' page (/docs): the chat page itself has no "Use via API" link.
API_DESCRIPTION = ("Cited, extractive answers about ICE partnership programs. Each `[n]` in an answer is its source "
                   "`n`, whose `quote` is verbatim from the document. `/v1/chat/completions` speaks OpenAI's chat "
                   "protocol (model `partnerbot`). The chat page's Gradio endpoint `/ask` returns the same JSON as "
                   "`/api/ask`: `gradio_client.Client(url).predict(question, history, api_name=\"/ask\")`.")

class StoreCheck:
    """Whether the document store was reachable when last asked, asking `health()` at most once per `seconds`.

    Gradio's REST route for `/ask` is checked before each call; asking the store each time would cost every
    call a round trip to it (and, during an outage, a failed connection).
    """

    def __init__(self, health: Callable[[], dict[str, Any]], seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self._health = health
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._reachable = True

    def reachable(self) -> bool:
        with self._lock:
            if self._clock() - self._checked >= self._seconds:
                self._reachable = bool(self._health()["store_reachable"])
                self._checked = self._clock()
            return self._reachable


def build_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """The FastAPI app: the chat page at `/`, `/healthz`, the Gradio API, and the HTTP API (docs at `/docs`).

    The routes come from each front end (`api`, `openai_api`, `documents`, then `web.fallback` for every other
    API address); every request passes the per-client rate limit and leaves one JSON line in the access log.
    """
    assistant = assistant or Assistant(settings, unanswered=unanswered.recorder(settings))
    metrics = Metrics(lambda: assistant.version)
    limiter = RateLimiter(settings.serving.rate_limit, settings.serving.rate_burst)
    demo = build_blocks(settings, assistant, metrics, limiter)
    demo.queue(default_concurrency_limit=settings.serving.concurrency)
    app = FastAPI(title="partnerbot", version=__version__, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json", description=API_DESCRIPTION)
    front = web.Front(assistant, metrics, settings.serving.concurrency)
    web.install(app, front)
    routers = [api.routes(front, metrics), openai_api.routes(front), documents.routes(assistant)]
    for router in routers:
        app.include_router(router)
    app.include_router(web.fallback(front, *routers))  # after the API's own routes, which are tried first
    store_check = StoreCheck(assistant.health)

    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["operations"])
    def healthz() -> JSONResponse:
        """The index version and whether the store is reachable: 200 when it is, else 503 (HEAD for monitors)."""
        health = assistant.health()
        return JSONResponse(health, status_code=200 if health["ok"] else 503)

    @app.middleware("http")
    async def no_uploads(request: Any, call_next: Any) -> Any:
        # The chat takes no files: Gradio's upload route would let anyone fill the disk, so it does not exist here.
        if request.url.path.rstrip("/").endswith("/upload"):
            return JSONResponse({"error": "this server accepts no uploads"}, status_code=404)
        return await call_next(request)

    @app.middleware("http")
    async def gradio_ask_outage(request: Any, call_next: Any) -> Any:
        # Gradio's REST route for `/ask` (POST /gradio_api/call/ask) answers 503 during an outage, as `/api/ask`
        # does. Its queue protocol (what gradio_client speaks) has already sent 200 when the answer is made, so
        # there the JSON's `unavailable: true` is the signal.
        if (request.method == "POST" and request.url.path.rstrip("/") == "/gradio_api/call/ask"
                and not await run_in_threadpool(store_check.reachable)):
            problem = replies.problem(StoreUnavailableError("the vector store is unreachable"))
            return JSONResponse(replies.body(problem), status_code=replies.status(problem))
        return await call_next(request)

    # Added last, so they run first (Starlette wraps each middleware around those added before it): every request,
    # the refusals above included, is charged to its client and leaves its line in the access log.
    app.add_middleware(RateLimitMiddleware, limiter=limiter,
                       on_limited=lambda path: metrics.observe(endpoint_of(path), "rate_limited"))
    app.add_middleware(AccessLogMiddleware, log_questions=settings.serving.log_questions)

    return gr.mount_gradio_app(
        app, demo, path="/", show_error=False, ssr_mode=False, css=CSS, head=HEAD, theme=THEME, allowed_paths=[],
        blocked_paths=[str(settings.data_dir.resolve()), str(settings.corpus_dir.resolve())], footer_links=[],
        mcp_server=False,
    )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` for uvicorn, so a busy port is found before the model loads.

    Raises:
        PartnerbotError: the port is taken, or the address cannot be used.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; a live listener still conflicts
    except OSError as exc:
        raise PartnerbotError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PartnerbotError(f"port {port} on {host} is already in use: stop the program using it, "
                                  "or choose another port with --port") from exc
        raise PartnerbotError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def serve(settings: Settings, loading: Callable[[str], AbstractContextManager[Any]] | None = None) -> None:
    """Warm the model and index, then serve until interrupted. Never opens a share tunnel.

    Args:
        loading: shows a named step while the model and the index load (the CLI's spinner).

    Raises:
        PartnerbotError: the port is taken, or there is no usable index, reader or (with `llm_url` set) writer.
    """
    import torch
    import uvicorn

    from partnerbot.index.embed import query_embedder

    logging.basicConfig(level=settings.serving.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    configure_access_log()
    sock = listen(settings.serving.host, settings.serving.port)
    try:
        # Several questions run at once: one torch thread each beats oversubscribed intra-op threads.
        torch.set_num_threads(1)
        # The warm-up question is one the assistant answers (a test checks it): it never reaches the unanswered log.
        retriever = Retriever(settings, query_embedder(settings, batching=settings.serving.embed_batching))
        assistant = Assistant(settings, retriever=retriever, unanswered=unanswered.recorder(settings))
        with (loading or (lambda _name: contextlib.nullcontext()))("loading the model and the index"):
            try:
                assistant.check()  # no usable index, reader or writer: a one-line error, before listening
                assistant.ask(EXAMPLE_QUESTIONS[0])  # load the model and the index before the first visitor
            except StoreError as exc:  # unreachable, or failing: the chat says so until the store is back
                log.warning("the vector store cannot answer (%s); the chat will say so until it is back", exc)
            app = build_app(settings, assistant)
    except BaseException:
        sock.close()
        raise
    print(f"partnerbot: serving http://{settings.serving.host}:{settings.serving.port} (index {assistant.version or 'not loaded'})",
          flush=True)
    # Open client streams must not hold a shutdown (SIGTERM) for long.
    config = uvicorn.Config(app, log_level=settings.serving.log_level, timeout_graceful_shutdown=3, access_log=False,
                            http=connections.protocol(settings.serving.read_timeout))
    uvicorn.Server(config).run(sockets=[sock])
