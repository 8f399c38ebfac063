"""The public chat page (Gradio Blocks) and Gradio's `/ask` API, and the one FastAPI app that serves them with `api`."""

from __future__ import annotations

import contextlib
import errno
import html
import logging
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from partnerbot import __version__
from partnerbot.answering import unanswered
from partnerbot.answering.assistant import Assistant, outage
from partnerbot.answering.retrieve import Retriever
from partnerbot.errors import PartnerbotError, StoreUnavailableError
from partnerbot.phrases import CITATION_RE, EXAMPLE_QUESTIONS
from partnerbot.sanitize import clean_text
from partnerbot.serving import api, cards, feedback, replies
from partnerbot.serving.limits import RateLimiter, RateLimitMiddleware
from partnerbot.serving.replies import Asker
from partnerbot.serving.telemetry import AccessLogMiddleware, Metrics, configure_access_log, endpoint_of
from partnerbot.settings import Settings
from partnerbot.types import Answer, Problem

log = logging.getLogger("partnerbot.ui")
STATIC = Path(__file__).parent.parent / "static"
CSS = (STATIC / "page.css").read_text(encoding="utf-8")
# The developers' page (/docs): the chat page itself has no "Use via API" link.
API_DESCRIPTION = ("Cited, extractive answers about ICE partnership programs. Each `[n]` in an answer is its source "
                   "`n`, whose `quote` is verbatim from the document. `/v1/chat/completions` speaks OpenAI's chat "
                   "protocol (model `partnerbot`). The chat page's Gradio endpoint `/ask` returns the same JSON as "
                   "`/api/ask`: `gradio_client.Client(url).predict(question, history, api_name=\"/ask\")`.")
HEAD = (f"<style>\n{(STATIC / 'frame.css').read_text(encoding='utf-8')}</style>\n"
        f"<script>\n{(STATIC / 'page.js').read_text(encoding='utf-8')}</script>")
# WCAG 2.1 AA asks 4.5:1 for text. Gradio's default orange (#f97316, #ea580c in the dark theme) gives white
# text 2.8:1 and 3.6:1; orange-700 gives 5.2:1 and orange-800, on hover, 7.3:1. Its placeholders (#bbbbc2 on
# white, #71717a on #27272a) give 1.9:1 and 3.1:1; these give 4.8:1 and 5.8:1.
THEME = gr.themes.Default().set(
    button_primary_background_fill="#c2410c", button_primary_background_fill_dark="#c2410c",
    button_primary_background_fill_hover="#9a3412", button_primary_background_fill_hover_dark="#9a3412",
    button_primary_text_color="#ffffff", button_primary_text_color_dark="#ffffff",
    input_placeholder_color="#6b7280", input_placeholder_color_dark="#a1a1aa",
)




def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


INTRO = (
    "# partnerbot\n"
    "Ask about the ICE partnership programs named in ICE's July 30, 2020 press release: 287(g), the Criminal "
    "Alien Program, ERO, HSI, BEST, the IPR Center, the Cyber Crimes Center, HERO Corps, the Human Rights "
    "Violators and War Crimes Center, and the Office of Partnership and Engagement.\n\n"
    "*Each answer quotes public sources, listed right under it with their dates. They may be out of date; "
    "follow the links to check.*"
)
# The first stop of the keyboard path (page.js moves focus into the question box).
SKIP_LINK = "<a class='pb-skip' href='#question'>Skip to question</a>"
# The conversation is one Tab stop (see page.js); this says how to move inside it.
KEYS_HINT = "<p class='pb-hint'>Keyboard: in the conversation, the arrow keys move between links and buttons.</p>"


class SourceDates:
    """The day the corpus's undated live pages were checked, for the cards' dates (see `cards.date_label`).

    It is the latest date any supporting page carries in the active index version, found once per version.
    """

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.version, self.checked = "", ""

    def __call__(self) -> str:
        try:
            snapshot = self.assistant.snapshots.current()
        except Exception:  # the store is down: cards then say "published" for every date
            return self.checked
        if snapshot.version != self.version:
            dates = [p.date for s in snapshot.sentences for p in s.pages]
            self.version, self.checked = snapshot.version, max(dates, default="")
        return self.checked


def build_blocks(settings: Settings, assistant: Assistant, metrics: Metrics | None = None,
                 limiter: RateLimiter | None = None) -> gr.Blocks:
    """The chat page. All conversation state lives in per-session `gr.State`.

    `limiter` charges each question to its client (over the limit, the page says so politely);
    `metrics` counts each question by outcome.
    """
    metrics = metrics or Metrics(lambda: assistant.version)
    asker = Asker(assistant, metrics, limiter or RateLimiter(settings.rate_limit, settings.rate_burst))
    checked = SourceDates(assistant)

    def lookup(doc_id: str) -> Any:
        try:
            return assistant.document(doc_id)
        except Exception:  # the store is down or the index changed: the card shows the quote alone
            return None

    with gr.Blocks(title="partnerbot: ICE partnership programs") as demo:
        gr.HTML(SKIP_LINK, elem_id="skip", padding=False)
        gr.Markdown(INTRO, elem_id="intro")
        answers = gr.State([])
        voted = gr.State(0)  # the answer number of the last vote, for its optional comment
        chat = gr.Chatbot(label="Conversation", show_label=False, elem_id="chat", height=460, sanitize_html=True,
                          feedback_options=("Like", "Dislike"), buttons=["copy"], layout="bubble",
                          latex_delimiters=[], examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                          placeholder="Ask a question below, or start with one of these:")
        with gr.Row(elem_id="ask-row", equal_height=True):
            box = gr.Textbox(label="Your question", elem_id="question", max_length=settings.max_question_chars,
                             placeholder=f"e.g. {EXAMPLE_QUESTIONS[0]}", lines=1, max_lines=4, scale=5, min_width=180)
            send = gr.Button("Ask", variant="primary", elem_id="ask-button", scale=1, min_width=72)
        with gr.Row(elem_id="after-row"):
            new = gr.Button("New chat", elem_id="new-chat", size="sm", scale=0, min_width=100)
            gr.HTML(KEYS_HINT, elem_id="keys-hint", padding=False)
        status = gr.Markdown(elem_id="feedback-status")
        with gr.Row(visible=False, elem_id="comment-row") as comment_row:
            comment = gr.Textbox(label="Add a comment to your vote (optional)", elem_id="comment",
                                 max_length=feedback.MAX_COMMENT, lines=1, scale=5, min_width=180)
            send_comment = gr.Button("Send comment", elem_id="send-comment", scale=1, min_width=120)
        announce = gr.HTML("", elem_id="answer-announcement")  # read out by page.js, never shown

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
            words = html.escape(data["answer"]).split(" ")
            step = max(4, len(words) // 8)
            for i in range(step, len(words), step):  # stream the plain text in; links and sources come at the end
                yield [*messages, {"role": "assistant", "content": " ".join(words[:i])}], records, "", gr.update()
                time.sleep(0.02)
            shown = {"role": "assistant", "content": cards.message_html(data, len(records), lookup, checked()),
                     "options": cards.example_options(data)}
            yield [*messages, shown], records, "", announcement(data, len(records))

        def ask_example(messages: list[dict[str, Any]], records: list[dict[str, Any]], evt: gr.SelectData,  # type: ignore[no-untyped-def]
                        request: gr.Request):
            value = evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value or "")
            yield from respond(value, messages, records, request)

        def like(records: list[dict[str, Any]], evt: gr.LikeData):  # type: ignore[no-untyped-def]
            k = _answer_number(evt.index)
            if k is None or k > len(records) or not records[k - 1]["question"]:
                return "Feedback can be given on answers only.", gr.update(visible=False), "", 0
            liked = evt.liked if isinstance(evt.liked, bool) else str(evt.liked).lower() in ("like", "true")
            r = records[k - 1]
            feedback.record(settings.feedback_path, question=r["question"], history=r["history"], answer=r["answer"],
                            vote="up" if liked else "down", index_version=r["version"])
            return (f"Thank you: your vote on answer {k} was recorded. You can add a comment below.",
                    gr.update(visible=True), "", k if liked else -k)

        def add_comment(records: list[dict[str, Any]], k: int, note: str):  # type: ignore[no-untyped-def]
            if not k or abs(k) > len(records) or not (note or "").strip():
                return "Vote on an answer first, then add a comment.", gr.update(), note
            r = records[abs(k) - 1]
            feedback.record(settings.feedback_path, question=r["question"], history=r["history"], answer=r["answer"],
                            vote="up" if k > 0 else "down", comment=note.strip(), index_version=r["version"])
            return f"Thank you: your comment on answer {abs(k)} was recorded.", gr.update(visible=False), ""

        def clear():  # type: ignore[no-untyped-def]
            return [], [], "", "", "", gr.update(visible=False), "", 0

        for trigger in (box.submit, send.click):
            trigger(respond, [box, chat, answers], [chat, answers, box, announce], api_visibility="private")
        for chosen in (chat.example_select, chat.option_select):  # an example question, or one offered by a decline
            chosen(ask_example, [chat, answers], [chat, answers, box, announce], api_visibility="private")
        # A vote or a comment updates a line of text: no progress overlay dims it meanwhile.
        chat.like(like, [answers], [status, comment_row, comment, voted], api_visibility="private",
                  show_progress="hidden")
        for sent in (comment.submit, send_comment.click):
            sent(add_comment, [answers, voted, comment], [status, comment_row, comment], api_visibility="private",
                 show_progress="hidden")
        resets = [chat, answers, box, status, announce, comment_row, comment, voted]
        new.click(clear, None, resets, api_visibility="private")
        chat.clear(clear, None, resets, api_visibility="private")

        def ask(question: str, history: list[str] | None = None, request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
            """Answer a question; returns the same JSON as `partnerbot ask --json` (`error`, `unavailable: true` in an outage)."""
            return replies.body(asker.ask("gradio_ask", question, history or [], _client(request)))

        gr.api(ask, api_name="ask")
    return demo


def announcement(data: dict[str, Any], number: int) -> str:
    """What a screen reader says once answer `number` is complete (copied to a live region by `static/page.js`)."""
    text = CITATION_RE.sub(lambda m: f"(source {m.group(1)})", data["answer"])
    count = len(data["sources"])
    if count:
        text += f" {count} source{'s' if count > 1 else ''} listed under the answer."
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
    assistant = assistant or Assistant(settings, unanswered=unanswered.recorder(settings))
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
                problem = outage()
                return JSONResponse(replies.body(problem), status_code=replies.status(problem))
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = assistant.health()
        return JSONResponse(health, status_code=200 if health["ok"] else 503)

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
        PartnerbotError: the port is taken, or there is no usable index.
    """
    import torch
    import uvicorn

    from partnerbot.index.embed import query_embedder

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    configure_access_log()
    sock = listen(settings.host, settings.port)
    try:
        # Several questions run at once: one torch thread each beats oversubscribed intra-op threads.
        torch.set_num_threads(1)
        # The warm-up question is one the assistant answers (a test checks it): it never reaches the unanswered log.
        retriever = Retriever(settings, query_embedder(settings, batching=settings.embed_batching))
        assistant = Assistant(settings, retriever=retriever, unanswered=unanswered.recorder(settings))
        with (loading or (lambda _name: contextlib.nullcontext()))("loading the model and the index"):
            try:
                assistant.check()  # no usable index or reader: a one-line error, before listening
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
