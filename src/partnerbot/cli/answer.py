"""The public's commands: `ask`, `chat` and `serve`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from partnerbot.cli.common import app, err, fail, out, settings_from
from partnerbot.errors import PartnerbotError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    history: Annotated[list[str] | None, typer.Option("--history", help="An earlier question (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    retriever: Annotated[str | None, typer.Option(help="hybrid, dense or bm25.")] = None,
    url: Annotated[str | None, typer.Option(
        help="Ask the partnerbot server at this address (its /ask endpoint) instead of loading the model.")] = None,
) -> None:
    """Answer one question from the corpus, with numbered sources.

    Exit codes: 0 answered, uncertain or declined; 1 unusable input or another error; 4 the document store (or,
    with --url, the server) is unavailable. With --json, a question that gets no answer prints its error JSON.

    Example: partnerbot ask "When were they created?" --history "What is BEST?"
             partnerbot ask "What is HERO Corps?" --url http://127.0.0.1:7860 --json
    """
    from partnerbot.answers import Problem
    from partnerbot.progress import step
    from partnerbot.serving import replies
    from partnerbot.serving.terminal import print_answer

    try:
        if url:
            if retriever:
                raise PartnerbotError("--retriever applies to the local assistant; a server answers with its own settings")
            from partnerbot.serving.remote import ask as ask_server

            result = ask_server(url, question, history or [])
        else:
            settings = settings_from(retriever=retriever)
            with step(err, "loading the embedding model"):
                from partnerbot.answering import unanswered
                from partnerbot.answering.assistant import Assistant
                from partnerbot.index.embed import embed_model

                embed_model(settings)
            result = replies.ask(Assistant(settings, unanswered=unanswered.recorder(settings)), question, history or [])
    except PartnerbotError as exc:  # with --url, `StoreUnavailableError`: the server cannot be reached (exit 4)
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(replies.body(result), ensure_ascii=False, indent=2) + "\n")
    if isinstance(result, Problem):  # no answer: say why (an operator's detail when there is one) and exit non-zero
        err.print(f"Error: {result.detail or result.message}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(replies.exit_code(result))
    if not as_json:
        print_answer(out, result)


@app.command()
def chat() -> None:
    """Hold a conversation in the terminal: follow-ups use the earlier questions, answers list their sources.

    Commands: /sources n (source n of the last answer in full), /sources, /new (a new conversation),
    /help; Ctrl-D leaves. Exit codes: 0 left, 1 error, 4 the document store is unavailable.

    Example: partnerbot chat
    """
    import readline  # noqa: F401  (line editing and recall for input())

    from partnerbot.answering import unanswered
    from partnerbot.answering.assistant import Assistant
    from partnerbot.index.embed import embed_model
    from partnerbot.serving.terminal import chat as converse

    try:
        settings = settings_from()
        with err.status("Loading the model and the index..."):
            assistant = Assistant(settings, unanswered=unanswered.recorder(settings))
            assistant.doc_ids()  # the active index version
            embed_model(settings)
    except PartnerbotError as exc:
        fail(exc)
    out.print(f"partnerbot: index {assistant.version}. Ask about the ICE partnership programs.", highlight=False)
    converse(assistant, out, lambda: input("you> "))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860).")] = None,
    log_level: Annotated[str | None, typer.Option(
        help="critical, error, warning (default), info or debug.")] = None,
) -> None:
    """Serve the chat page and the `/ask` API.

    Exits 1 with a one-line message when the port is taken or no index has been built.

    Example: partnerbot serve --port 7860 --log-level info
    """
    from partnerbot.progress import step

    try:
        if log_level is not None and log_level.lower() not in LOG_LEVELS:
            raise PartnerbotError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        settings = settings_from(host=host, port=port, log_level=log_level.lower() if log_level else None)
        with step(err, "starting the chat server"):
            from partnerbot.serving.server import serve as run_server
        run_server(settings, loading=lambda name: step(err, name))
    except PartnerbotError as exc:
        fail(exc)
