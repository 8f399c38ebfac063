"""The public chat page (Gradio Blocks) and Gradio's `/ask` API; `server` serves it with the HTTP API."""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from partnerbot.answering.assistant import Assistant
from partnerbot.answers import Answer, Problem
from partnerbot.errors import PartnerbotError
from partnerbot.phrases import EXAMPLE_QUESTIONS
from partnerbot.sanitize import shown
from partnerbot.serving import cards, feedback, replies
from partnerbot.serving.asker import Asker
from partnerbot.serving.limits import RateLimiter
from partnerbot.serving.telemetry import Metrics
from partnerbot.settings import Settings

log = logging.getLogger("partnerbot.ui")
STATIC = Path(__file__).parent.parent / "static"
CSS = (STATIC / "page.css").read_text(encoding="utf-8")
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
        except PartnerbotError:  # the store is down: cards then say "published" for every date
            return self.checked
        if snapshot.version != self.version:
            dates = [p.date for s in snapshot.sentences for p in s.pages]
            self.version, self.checked = snapshot.version, max(dates, default="")
        return self.checked


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation on the page, kept in the session's state (never sent to the browser)."""

    question: str  # as read; "" when the question got no answer (it is then no one's history)
    history: tuple[str, ...]
    result: Answer | Problem
    version: str


# The conversation grows in the browser, not on the wire: each question's event sends its own turn only (its
# two messages, as `gr.Chatbot` shapes them) to a hidden component, and this script puts them in the chat after
# the turns before it. Without it, every reply would carry the whole conversation again.
APPEND_TURN = ("(chat, turn) => [turn && turn.messages ? "
               "[...(chat || []).slice(0, 2 * (turn.n - 1)), ...turn.messages] : chat]")


def build_blocks(settings: Settings, assistant: Assistant, metrics: Metrics | None = None,
                 limiter: RateLimiter | None = None) -> gr.Blocks:
    """The chat page. All conversation state lives in per-session `gr.State`.

    `limiter` charges each question to its client (over the limit, the page says so politely);
    `metrics` counts each question by outcome.
    """
    metrics = metrics or Metrics(lambda: assistant.version)
    asker = Asker(assistant, metrics, limiter or RateLimiter(settings.serving.rate_limit, settings.serving.rate_burst))
    checked = SourceDates(assistant)
    limit = settings.answering.max_question_chars

    def lookup(doc_id: str) -> Any:
        try:
            return assistant.document(doc_id)
        except PartnerbotError:  # the store is down or the index changed: the card shows the quote alone
            return None

    with gr.Blocks(title="partnerbot: ICE partnership programs") as demo:
        gr.HTML(SKIP_LINK, elem_id="skip", padding=False)
        gr.Markdown(INTRO, elem_id="intro")
        answers = gr.State([])  # the conversation's `Turn`s
        voted = gr.State(0)  # the answer number of the last vote, for its optional comment
        chat = gr.Chatbot(label="Conversation", show_label=False, elem_id="chat", height=460, sanitize_html=True,
                          feedback_options=("Like", "Dislike"), buttons=["copy"], layout="bubble",
                          latex_delimiters=[], examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                          placeholder="Ask a question below, or start with one of these:")
        turn = gr.JSON(visible=False, elem_id="turn")  # the newest turn's messages (see APPEND_TURN)
        with gr.Row(elem_id="ask-row", equal_height=True):
            box = gr.Textbox(label="Your question", elem_id="question", max_length=limit,
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

        def respond(question: str, records: list[Turn], request: gr.Request):  # type: ignore[no-untyped-def]
            history = tuple(r.question for r in records if r.question)
            result = asker.ask("chat_page", question, list(history), _client(request))
            asked = result.question if isinstance(result, Answer) else shown(question, limit)
            number = len(records) + 1
            records = [*records, Turn(result.question if isinstance(result, Answer) else "", history, result,
                                      result.index_version if isinstance(result, Answer) else assistant.version)]
            user: Any = {"role": "user", "content": cards.question_html(asked or "(empty)")}

            def messages(content: str, options: list[dict[str, str]] | None = None) -> dict[str, Any]:
                reply: Any = {"role": "assistant", "content": content, "options": options or []}
                return {"n": number, "messages": chat.postprocess([user, reply]).model_dump()}

            words = html.escape(replies.message(result)).split(" ")
            step = max(4, len(words) // 8)
            for i in range(step, len(words), step):  # stream the plain text in; links and sources come at the end
                yield messages(" ".join(words[:i])), records, "", gr.update()
                time.sleep(0.02)
            final = cards.message_html(result, number, lookup, checked())
            yield messages(final, cards.example_options(result)), records, "", announcement(result, number)

        def ask_example(records: list[Turn], evt: gr.SelectData, request: gr.Request):  # type: ignore[no-untyped-def]
            value = evt.value.get("text", "") if isinstance(evt.value, dict) else str(evt.value or "")
            yield from respond(value, records, request)

        def like(records: list[Turn], evt: gr.LikeData):  # type: ignore[no-untyped-def]
            k = _answer_number(evt.index)
            if k is None or k > len(records) or not isinstance(records[k - 1].result, Answer):
                return "Feedback can be given on answers only.", gr.update(visible=False), "", 0
            liked = evt.liked if isinstance(evt.liked, bool) else str(evt.liked).lower() in ("like", "true")
            _record(records[k - 1], "up" if liked else "down")
            return (f"Thank you: your vote on answer {k} was recorded. You can add a comment below.",
                    gr.update(visible=True), "", k if liked else -k)

        def add_comment(records: list[Turn], k: int, note: str):  # type: ignore[no-untyped-def]
            if not k or abs(k) > len(records) or not (note or "").strip():
                return "Vote on an answer first, then add a comment.", gr.update(), note
            _record(records[abs(k) - 1], "up" if k > 0 else "down", note.strip())
            return f"Thank you: your comment on answer {abs(k)} was recorded.", gr.update(visible=False), ""

        def _record(r: Turn, vote: str, note: str = "") -> None:
            assert isinstance(r.result, Answer)
            feedback.record(settings.feedback_path, question=r.question, history=list(r.history), answer=r.result,
                            vote=vote, comment=note, index_version=r.version)

        def clear():  # type: ignore[no-untyped-def]
            return [], [], "", "", "", gr.update(visible=False), "", 0, None

        asked = [turn, answers, box, announce]
        for trigger in (box.submit, send.click):
            trigger(respond, [box, answers], asked, api_visibility="private")
        for chosen in (chat.example_select, chat.option_select):  # an example question, or one offered by a decline
            chosen(ask_example, [answers], asked, api_visibility="private")
        turn.change(None, [chat, turn], [chat], js=APPEND_TURN, queue=False, api_visibility="private")
        # A vote or a comment updates a line of text: no progress overlay dims it meanwhile.
        chat.like(like, [answers], [status, comment_row, comment, voted], api_visibility="private",
                  show_progress="hidden")
        for sent in (comment.submit, send_comment.click):
            sent(add_comment, [answers, voted, comment], [status, comment_row, comment], api_visibility="private",
                 show_progress="hidden")
        resets = [chat, answers, box, status, announce, comment_row, comment, voted, turn]
        new.click(clear, None, resets, api_visibility="private")
        chat.clear(clear, None, resets, api_visibility="private")

        def ask(question: str, history: list[str] | None = None, request: gr.Request = None) -> dict[str, Any]:  # type: ignore[assignment]
            """Answer a question; returns the same JSON as `partnerbot ask --json` (`error`, `unavailable: true` in an outage)."""
            return replies.body(asker.ask("gradio_ask", question, history or [], _client(request)))

        gr.api(ask, api_name="ask")
    return demo


def announcement(result: Answer | Problem, number: int) -> str:
    """What a screen reader says once answer `number` is complete (copied to a live region by `static/page.js`).

    Made from the answer's parts: each citation is read as "(source n)", and the sources are counted.
    """
    if isinstance(result, Problem):
        text = result.message
    else:
        said = [f"{p.text} " + " ".join(f"(source {n})" for n in p.cites) for p in result.passages]
        text = " ".join(t for t in (result.notice, *said) if t)
        if result.sources:
            count = len(result.sources)
            text += f" {count} source{'s' if count > 1 else ''} listed under the answer."
    key = f"{number}-{time.time_ns()}"  # a new key each time, so a repeated answer is read out again
    return f"<p class='pb-announce' data-key='{key}'>{html.escape(f'Answer {number}: {text}')}</p>"


def _answer_number(index: Any) -> int | None:
    """The 1-based answer number of a chatbot message index (user and answer messages alternate)."""
    i = index[0] if isinstance(index, (list, tuple)) else index
    if not isinstance(i, int) or i % 2 == 0:
        return None
    return i // 2 + 1
