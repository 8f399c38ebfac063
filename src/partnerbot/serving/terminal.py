"""Answers in the terminal: the printed form of an `Answer`, and the conversation of `partnerbot chat`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from partnerbot.answers import Answer, Problem
from partnerbot.errors import PartnerbotError
from partnerbot.phrases import EXAMPLE_QUESTIONS, GENERATED_NOTE
from partnerbot.serving import replies
from partnerbot.serving.replies import Result
from partnerbot.text import paragraph_span
from partnerbot.types import Source

if TYPE_CHECKING:  # `ask --url` prints answers without loading the answering stack
    from partnerbot.answering.assistant import Assistant

HELP = ("Commands: /sources n shows source n of the last answer in full, /sources lists them, "
        "/new starts a new conversation, /help shows this; Ctrl-D leaves.")
# Shown by `/sources n` above the quote; every other field of `Source` is printed as it comes.
_FULL_SKIP = {"n", "title", "quote", "start", "end"}


def print_answer(console: Console, answer: Answer) -> None:
    """The answer's text, then each source: number, title, section, quote, and the supporting page with its date."""
    if answer.mode == "generated":
        console.print(GENERATED_NOTE, style="italic", highlight=False, markup=False)
    console.print(answer.text, highlight=False, markup=False)
    for s in answer.sources:
        console.print(f"\n[{s.n}] {s.title} - {s.section}\n    \"{s.quote}\"\n    Source: {s.url} (as of {s.date})"
                      + (f"\n    Program page: {s.doc_url}" if s.doc_url and s.doc_url != s.url else ""),
                      highlight=False, markup=False, soft_wrap=True)  # soft wrap: addresses stay whole


def print_source(console: Console, source: Source, document_text: str | None) -> None:
    """One source in full: every field, and the quote highlighted in its paragraph of the document."""
    console.print(Text(f"[{source.n}] {source.title}", style="bold"))
    for f in dataclasses.fields(source):
        if f.name not in _FULL_SKIP:
            console.print(f"{f.name}: {getattr(source, f.name)}", highlight=False, markup=False)
    text = document_text or ""
    if text[source.start : source.end] != source.quote:  # the index changed since the answer: the quote alone
        console.print(Text(f"\"{source.quote}\"", style="reverse"))
        return
    a, b = paragraph_span(text, source.start, source.end)
    passage = Text(text[a:source.start])
    passage.append(text[source.start : source.end], style="reverse")
    passage.append(text[source.end : b])
    console.print(passage)


class Conversation:
    """One terminal conversation: the earlier questions (for follow-ups) and the last answer."""

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.history: list[str] = []
        self.last: Answer | None = None

    def ask(self, question: str) -> Result:
        """Answer with the conversation so far as history, as the chat page does.

        A question that gets a `Problem` (empty, too long, the store unavailable) is not added to the history.
        """
        result = replies.ask(self.assistant, question, self.history)
        if isinstance(result, Answer):
            self.history.append(result.question)
            self.last = result
        return result

    def new(self) -> None:
        self.history, self.last = [], None


def chat(assistant: Assistant, console: Console, read: Callable[[], str]) -> None:
    """Hold a conversation until `read` raises EOFError (Ctrl-D) or KeyboardInterrupt (Ctrl-C)."""
    conv = Conversation(assistant)
    console.print(HELP, highlight=False, markup=False)
    while True:
        try:
            line = read().strip()
        except (EOFError, KeyboardInterrupt):
            console.print("\nGoodbye.")
            return
        if not line:
            continue
        if line.startswith("/"):
            _command(conv, console, line)
            continue
        answer = conv.ask(line)
        if isinstance(answer, Problem):  # e.g. an empty question, or a reindex with other settings while chatting
            console.print(f"Error: {answer.detail or answer.message}", style="red", highlight=False, markup=False)
            continue
        print_answer(console, answer)
        if answer.sources:
            console.print("(/sources n shows source n in full)", style="dim", highlight=False, markup=False)
        elif answer.outcome == "declined":  # what the chat page offers as buttons under a decline
            console.print("Try: " + " · ".join(EXAMPLE_QUESTIONS), style="dim", highlight=False, markup=False)


def _command(conv: Conversation, console: Console, line: str) -> None:
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name == "/new":
        conv.new()
        console.print("New conversation: earlier questions are forgotten.")
    elif name == "/help":
        console.print(HELP, highlight=False, markup=False)
    elif name == "/sources":
        sources = conv.last.sources if conv.last else ()
        if not sources:
            console.print("The last answer has no sources." if conv.last else "Ask a question first.")
        elif not arg:
            for s in sources:
                console.print(f"[{s.n}] {s.title} - {s.section}", highlight=False, markup=False)
        elif not arg.isdigit() or not 1 <= int(arg) <= len(sources):
            console.print(f"No source {arg}: the last answer has sources 1 to {len(sources)}.",
                          highlight=False, markup=False)
        else:
            source = sources[int(arg) - 1]
            try:
                doc = conv.assistant.document(source.doc_id)
            except PartnerbotError:  # the store is down: show what the answer itself holds
                doc = None
            print_source(console, source, doc.text if doc is not None else None)
    else:
        console.print(f"Unknown command {name}. {HELP}", highlight=False, markup=False)
