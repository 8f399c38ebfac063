"""The public chat page (Gradio Blocks) and Gradio's `/ask` API, and the one FastAPI app that serves them with `api`."""

from __future__ import annotations

import contextlib
import errno
import html
import logging
import re
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from . import __version__, api, feedback, replies
from .answer import Assistant
from .errors import PartnerbotError, StoreUnavailableError
from .limits import RateLimiter, RateLimitMiddleware
from .phrases import CITATION_RE, EXAMPLE_QUESTIONS, GENERATED_NOTE, UNAVAILABLE
from .replies import Asker
from .sanitize import clean_text
from .settings import Settings
from .telemetry import AccessLogMiddleware, Metrics, configure_access_log, endpoint_of
from .types import Answer, Problem, ProblemKind

log = logging.getLogger("partnerbot.ui")
STATIC = Path(__file__).parent / "static"
CSS = (STATIC / "page.css").read_text(encoding="utf-8")
API_DESCRIPTION = ("Cited, extractive answers about ICE partnership programs. Each `[n]` in an answer is its source "
                   "`n`, whose `quote` is verbatim from the document. `/v1/chat/completions` speaks OpenAI's chat "
                   "protocol (model `partnerbot`).")
HEAD = f"<script>\n{(STATIC / 'page.js').read_text(encoding='utf-8')}</script>"
# WCAG 2.1 AA asks 4.5:1 for text. Gradio's default orange (#f97316, #ea580c in the dark theme) gives white
# text 2.8:1 and 3.6:1; orange-700 gives 5.2:1 and orange-800, on hover, 7.3:1. Its placeholders (#bbbbc2 on
# white, #71717a on #27272a) give 1.9:1 and 3.1:1; these give 4.8:1 and 5.8:1.
THEME = gr.themes.Default().set(
    button_primary_background_fill="#c2410c", button_primary_background_fill_dark="#c2410c",
    button_primary_background_fill_hover="#9a3412", button_primary_background_fill_hover_dark="#9a3412",
    button_primary_text_color="#ffffff", button_primary_text_color_dark="#ffffff",
    input_placeholder_color="#6b7280", input_placeholder_color_dark="#a1a1aa",
)


def _paragraph(text: str, start: int, end: int) -> tuple[int, int]:
    a = text.rfind("\n\n", 0, start)
    b = text.find("\n\n", end)
    return (0 if a < 0 else a + 2), (len(text) if b < 0 else b)


def _highlight(text: str, start: int, end: int) -> str:
    esc = html.escape
    return f"{esc(text[:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:])}"


def _link(url: str, text: str) -> str:
    esc = html.escape
    return f"<a href='{esc(url, quote=True)}' target='_blank' rel='noopener noreferrer'>{esc(text)}</a>"


def page_label(page: dict[str, Any]) -> str:
    """What a link to a supporting page says: its title, or else its host ("www.gao.gov")."""
    return page.get("title") or urlparse(page["url"]).netloc or page["url"]


def _pages(source: dict[str, Any]) -> list[dict[str, Any]]:
    """A source's supporting pages, the one in `url` first (older answers carry only `url`)."""
    pages = [p for p in source.get("pages") or [] if p["url"] != source["url"]]
    first = {"url": source["url"], "date": source["date"], "title": source.get("page_title", "")}
    return [first, *pages]


def sources_html(assistant: Assistant, record: dict[str, Any] | None, number: int | None) -> str:
    """Numbered cards for one answer's sources; markup in corpus text is shown as text."""
    if not record:
        return "<p class='pb-note'>Sources for the selected answer appear here.</p>"
    data = record["answer"]
    if not data["sources"]:
        return f"<p class='pb-note'>No sources for answer {number}: it was not answered from the documents.</p>"
    esc = html.escape
    cards = [f"<p class='pb-note'>Sources for answer {number}: “{esc(record['question'][:200])}”</p>"]
    if data.get("outcome") == "uncertain":
        cards.append(f"<p class='pb-note pb-uncertain'>Answer {number} is not a confident answer: these are the "
                     "closest passages in the sources, which may not answer the question.</p>")
    if data.get("mode") == "generated":
        cards.append(f"<p class='pb-note pb-generated'>Answer {number} was written by a language model from these "
                     "sources. The quotes below are the evidence.</p>")
    for s in data["sources"]:
        doc = assistant.document(s["doc_id"]) if assistant else None
        if doc is not None and doc.text[s["start"] : s["end"]] == s["quote"]:
            a, b = _paragraph(doc.text, s["start"], s["end"])
            context = _highlight(doc.text[a:b], s["start"] - a, s["end"] - a)
            full = _highlight(doc.text, s["start"], s["end"])
        else:  # the index changed since this answer: show the quote alone
            context, full = f"<mark>{esc(s['quote'])}</mark>", ""
        cards.append(
            f"<article class='pb-card' id='src-{number}-{s['n']}' aria-label='Source {s['n']}'>"
            f"<h3>[{s['n']}] {esc(s['title'])}</h3>"
            f"<p class='pb-meta'>section: {esc(s['section'])}</p>"
            f"<p class='pb-quote'>{context}</p>"
            + "".join(f"<p class='pb-page'>{label} {_link(page['url'], page_label(page))}, as of {esc(page['date'])}</p>"
                      for label, page in zip(["Source:"] + ["Also:"] * 9, _pages(s), strict=False))
            + (f"<p class='pb-program'>{_link(s['doc_url'], 'Program page: ' + s['title'])}</p>"
               if s.get("doc_url") and s["doc_url"] != s["url"] else "")
            + (f"<details><summary>Show the whole document</summary><div class='pb-doc'>{full}</div></details>" if full else "")
            + "</article>"
        )
    return "".join(cards)


def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def build_blocks(settings: Settings, assistant: Assistant, metrics: Metrics | None = None,
                 limiter: RateLimiter | None = None) -> gr.Blocks:
    """The chat page. All conversation state lives in per-session `gr.State`.

    `limiter` charges each question to its client (over the limit, the page says so politely);
    `metrics` counts each question by outcome.
    """
    metrics = metrics or Metrics(lambda: assistant.version)
    asker = Asker(assistant, metrics, limiter or RateLimiter(settings.rate_limit, settings.rate_burst))
    with gr.Blocks(title="partnerbot: ICE partnership programs") as demo:
        gr.Markdown(
            "# partnerbot\n"
            "Ask about the ICE partnership programs named in ICE's July 30, 2020 press release: 287(g), the "
            "Criminal Alien Program, ERO, HSI, BEST, the IPR Center, the Cyber Crimes Center, HERO Corps, the "
            "Human Rights Violators and War Crimes Center, and the Office of Partnership and Engagement.\n\n"
            "*Answers quote the public sources listed beside them, with the date each source is as of. "
            "They may be out of date; follow the links to check.*"
        )
        answers = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chat = gr.Chatbot(label="Conversation", elem_id="chat", height=460, sanitize_html=True,
                                  feedback_options=("Like", "Dislike"), buttons=["copy"], layout="bubble")
                box = gr.Textbox(label="Your question", elem_id="question", max_length=settings.max_question_chars,
                                 placeholder=f"e.g. {EXAMPLE_QUESTIONS[0]}", lines=1, max_lines=4)
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask-button")
                    new = gr.Button("New chat", elem_id="new-chat")
                gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=[box], label="Example questions")
                comment = gr.Textbox(label="Optional feedback comment (type it, then click a thumb on an answer)",
                                     elem_id="comment", max_length=feedback.MAX_COMMENT, lines=1)
                status = gr.Markdown(elem_id="feedback-status")
                announce = gr.HTML("", elem_id="answer-announcement")  # read out by page.js, never shown
            with gr.Column(scale=2, min_width=280):
                gr.Markdown("## Sources")
                panel = gr.HTML(sources_html(assistant, None, None), elem_id="sources")

        def respond(question: str, messages: list[dict[str, Any]], records: list[dict[str, Any]],  # type: ignore[no-untyped-def]
                    request: gr.Request):
            history = [r["question"] for r in records if r["question"]]
            result = asker.ask("chat_page", question, history, _client(request))
            typed = clean_text(str(question or "")[: settings.max_question_chars], "question", settings.max_question_chars)
            shown_q = html.escape(result.question if isinstance(result, Answer) else typed)
            messages = [*messages, {"role": "user", "content": shown_q or "(empty)"}]
            if isinstance(result, Problem):  # still one record per turn, so answer numbers match chat messages
                data = {"answer": replies.message(result), "sources": []} | replies.body(result)
                record = {"question": "", "history": history, "answer": data, "version": assistant.version}
            else:
                data = result.to_dict()
                record = {"question": result.question, "history": history, "answer": data,
                          "version": result.index_version}
            records = [*records, record]
            text = html.escape(data["answer"])
            words = text.split(" ")
            step = max(4, len(words) // 8)
            for i in range(step, len(words), step):  # stream the plain text in; links come with the last part
                partial = generated_mark(data) + " ".join(words[:i])
                yield [*messages, {"role": "assistant", "content": partial}], records, gr.update(), "", gr.update()
                time.sleep(0.02)
            shown = generated_mark(data) + _linked(text, len(records), data["sources"])
            yield ([*messages, {"role": "assistant", "content": shown}], records,
                   sources_html(assistant, record, len(records)), "", announcement(data, len(records)))

        def select(records: list[dict[str, Any]], evt: gr.SelectData):  # type: ignore[no-untyped-def]
            k = _answer_number(evt.index)
            if k is None or k > len(records):
                return gr.update()
            return sources_html(assistant, records[k - 1], k)

        def like(records: list[dict[str, Any]], note: str, evt: gr.LikeData):  # type: ignore[no-untyped-def]
            k = _answer_number(evt.index)
            if k is None or k > len(records):
                return "Feedback can be given on answers only.", note
            liked = evt.liked if isinstance(evt.liked, bool) else str(evt.liked).lower() in ("like", "true")
            r = records[k - 1]
            if not r["question"]:
                return "Feedback can be given on answers only.", note
            feedback.record(settings.feedback_path, question=r["question"], history=r["history"], answer=r["answer"],
                            vote="up" if liked else "down", comment=note or "", index_version=r["version"])
            return f"Thank you: your feedback on answer {k} was recorded.", ""

        def clear():  # type: ignore[no-untyped-def]
            return [], [], sources_html(assistant, None, None), "", "", ""

        for trigger in (box.submit, send.click):
            trigger(respond, [box, chat, answers], [chat, answers, panel, box, announce], api_visibility="private")
        chat.select(select, [answers], [panel], api_visibility="private")
        chat.like(like, [answers, comment], [status, comment], api_visibility="private")
        new.click(clear, None, [chat, answers, panel, box, status, announce], api_visibility="private")
        chat.clear(clear, None, [chat, answers, panel, box, status, announce], api_visibility="private")

        def ask(question: str, history: list[str] | None = None, request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
            """Answer a question; returns the same JSON as `partnerbot ask --json` (`error`, `unavailable: true` in an outage)."""
            return replies.body(asker.ask("gradio_ask", question, history or [], _client(request)))

        gr.api(ask, api_name="ask")
    return demo


def generated_mark(data: dict[str, Any]) -> str:
    """The mark above an answer written by a language model; empty for a quoted answer."""
    if data.get("mode") != "generated":
        return ""
    return f"<p class='pb-generated'><em>{html.escape(GENERATED_NOTE)}</em></p>"


def _linked(text: str, number: int, sources: list[dict[str, Any]]) -> str:
    """Make each `[n]` of answer `number` a link to its source card (see `static/page.js`).

    A screen reader reads the link as "source 1: <title>" instead of "left bracket 1 right bracket". The chat's
    sanitizer drops `aria-label`, so the name travels as `title` (a tooltip) and page.js makes it the label.
    """
    titles = {str(s["n"]): s["title"] for s in sources}

    def link(m: re.Match[str]) -> str:
        n = m.group(1)
        name = html.escape(f"source {n}: {titles[n]}" if n in titles else f"source {n}", quote=True)
        return f'<a class="pb-cite" href="#src-{number}-{n}" title="{name}">[{n}]</a>'

    return CITATION_RE.sub(link, text)


def announcement(data: dict[str, Any], number: int) -> str:
    """What a screen reader says once answer `number` is complete (copied to a live region by `static/page.js`)."""
    text = CITATION_RE.sub(lambda m: f"(source {m.group(1)})", data["answer"])
    count = len(data["sources"])
    if count:
        text += f" {count} source{'s' if count > 1 else ''} listed under Sources."
    key = f"{number}-{time.time_ns()}"  # a new key each time, so a repeated answer is read out again
    return f"<p class='pb-announce' data-key='{key}'>{html.escape(f'Answer {number}: {text}')}</p>"


def _answer_number(index: Any) -> int | None:
    """The 1-based answer number of a chatbot message index (user and answer messages alternate)."""
    i = index[0] if isinstance(index, (list, tuple)) else index
    if not isinstance(i, int) or i % 2 == 0:
        return None
    return i // 2 + 1


def build_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """The FastAPI app: the chat page at `/`, `/healthz`, the Gradio API, and the HTTP API of `api` (docs at `/docs`).

    Every request passes the per-client rate limit and leaves one JSON line in the access log.
    """
    assistant = assistant or Assistant(settings, front_end=True)
    metrics = Metrics(lambda: assistant.version)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    demo = build_blocks(settings, assistant, metrics, limiter)
    demo.queue(default_concurrency_limit=settings.concurrency)
    app = FastAPI(title="partnerbot", version=__version__, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json", description=API_DESCRIPTION)
    api.register(app, assistant, metrics, settings.concurrency)
    app.add_middleware(RateLimitMiddleware, limiter=limiter,
                       on_limited=lambda path: metrics.observe(endpoint_of(path), "rate_limited"))
    app.add_middleware(AccessLogMiddleware, log_questions=settings.log_questions)

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
        if request.method == "POST" and request.url.path.rstrip("/") == "/gradio_api/call/ask":
            health = await run_in_threadpool(assistant.health)
            if not health["store_reachable"]:
                problem = Problem(ProblemKind.UNAVAILABLE, UNAVAILABLE)
                return JSONResponse(replies.body(problem), status_code=replies.status(problem))
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = assistant.health()
        return JSONResponse(health, status_code=200 if health["ok"] else 503)

    return gr.mount_gradio_app(
        app, demo, path="/", show_error=False, ssr_mode=False, css=CSS, head=HEAD, theme=THEME, allowed_paths=[],
        blocked_paths=[str(settings.data_dir.resolve()), str(settings.corpus_dir.resolve())], footer_links=["api"],
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
        PartnerbotError: the port is taken, or there is no usable index.
    """
    import torch
    import uvicorn

    from .embed import query_embedder

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    configure_access_log()
    sock = listen(settings.host, settings.port)
    try:
        # Several questions run at once: one torch thread each beats oversubscribed intra-op threads.
        torch.set_num_threads(1)
        # The warm-up question is one the assistant answers (a test checks it): it never reaches the unanswered log.
        assistant = Assistant(settings, front_end=True,
                              embedder=query_embedder(settings, batching=settings.embed_batching))
        with (loading or (lambda _name: contextlib.nullcontext()))("loading the model and the index"):
            try:
                assistant.snapshot()  # no usable index or reader: a one-line error, before listening
                warm = assistant.ask(EXAMPLE_QUESTIONS[0])  # load the model and the index before the first visitor
                if isinstance(warm, Problem):
                    log.warning("the warm-up question got no answer: %s", warm.detail or warm.message)
            except StoreUnavailableError:
                log.warning("the vector store is unreachable; the chat will say so until it is back")
            app = build_app(settings, assistant)
    except BaseException:
        sock.close()
        raise
    print(f"partnerbot: serving http://{settings.host}:{settings.port} (index {assistant.version or 'not loaded'})",
          flush=True)
    # Open client streams must not hold a shutdown (SIGTERM) for long.
    config = uvicorn.Config(app, log_level=settings.log_level, timeout_graceful_shutdown=3, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
