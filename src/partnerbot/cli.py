"""The `partnerbot` command line: each command checks its options, calls one function, reports."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from partnerbot.errors import CorpusErrors, PartnerbotError, StoreUnavailableError
from partnerbot.settings import Settings

app = typer.Typer(help="partnerbot: cited answers about ICE partnership programs.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
corpus_app = typer.Typer(help="Check the corpus.", no_args_is_help=True)
feedback_app = typer.Typer(help="Work with the feedback log.", no_args_is_help=True)
report_app = typer.Typer(help="Reports for maintainers.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(feedback_app, name="feedback")
app.add_typer(report_app, name="report")
out = Console()
err = Console(stderr=True)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except PartnerbotError:  # a project file's own error already names the file
        raise
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise PartnerbotError(f"invalid configuration: {exc}") from exc


def _warn(message: str) -> None:
    err.print(f"[yellow]Warning:[/yellow] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


def _existing(path: Path, what: str, setting: str) -> Path:
    """`path` if it exists; otherwise an error naming it and the setting that points there."""
    if not path.exists():
        raise PartnerbotError(f"{what} not found: {path} (set {setting} in partnerbot.toml or [tool.partnerbot], "
                              f"or PARTNERBOT_{setting.upper()})")
    return path


def _fail(exc: PartnerbotError) -> None:
    err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, CorpusErrors) else 1)


@corpus_app.command("check")
def corpus_check(corpus: Annotated[Path | None, typer.Option(help="Corpus folder.")] = None) -> None:
    """Validate every corpus file; exit non-zero on any problem.

    Example: partnerbot corpus check --corpus corpus/
    """
    from partnerbot.corpus.parse import load_corpus

    try:
        settings = _settings(corpus_dir=corpus)
        docs = load_corpus(settings.corpus_dir)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"corpus OK: {len(docs)} documents in {settings.corpus_dir}")


@corpus_app.command("sources")
def corpus_sources(
    write: Annotated[Path | None, typer.Option(help="Update the generated listing in this file (e.g. docs/corpus-sources.md).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder.")] = None,
) -> None:
    """List the pages each program document cites, with their as-of dates.

    Example: partnerbot corpus sources --write docs/corpus-sources.md
    """
    from partnerbot.corpus.parse import footnote_listing, load_corpus, with_footnote_listing

    try:
        docs = load_corpus(_settings(corpus_dir=corpus).corpus_dir)
    except PartnerbotError as exc:
        _fail(exc)
    if write is None:
        sys.stdout.write(footnote_listing(docs))
        return
    current = write.read_text(encoding="utf-8") if write.exists() else ""
    write.write_text(with_footnote_listing(current, docs), encoding="utf-8")
    out.print(f"updated the footnote listing in {write}")


@app.command()
def index(
    rebuild: Annotated[bool, typer.Option(help="Ignore the active version and embed everything.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print what would change; write nothing.")] = False,
    rollback: Annotated[bool, typer.Option(help="Make the previous version active again.")] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the eval gate (e.g. a first build).")] = False,
    force: Annotated[bool, typer.Option(help="Switch even if the eval gate fails.")] = False,
    cases: Annotated[Path | None, typer.Option(
        help="Cases (a file or folder) for the eval gate; default: the evals folder (both splits).")] = None,
) -> None:
    """Validate the corpus and build a new index version, switching to it when it is complete.

    Example: partnerbot index            (incremental: only changed documents are embedded)
             partnerbot index --rollback
    """
    from partnerbot.evaluation.metrics import reindex_gate
    from partnerbot.index.build import build_index
    from partnerbot.index.build import rollback as do_rollback
    from partnerbot.progress import Steps

    try:
        settings = _settings()
        if rollback:
            pointer = do_rollback(settings, notify=_warn)
            out.print(f"rolled back: active version is now {pointer.version} (previous: {pointer.previous})")
            return
        _existing(settings.corpus_dir, "corpus folder", "corpus_dir")
        with Steps(err) as steps:
            gate = None
            if settings.eval_gate and not (no_eval or force or dry_run):
                where = cases or _existing(settings.evals_dir, "evals folder (for the eval gate; --no-eval skips it)",
                                           "evals_dir")
                gate = reindex_gate(settings, _existing(where, "eval gate cases", "evals_dir"), steps)
            summary = build_index(settings, rebuild=rebuild, dry_run=dry_run, progress=steps, gate=gate,
                                  notify=_warn)
    except PartnerbotError as exc:
        _fail(exc)
    verb = "would change" if summary.dry_run else "changed"
    out.print(f"added {len(summary.added)}, {verb} {len(summary.changed)}, removed {len(summary.removed)}, "
              f"unchanged {len(summary.unchanged)} documents; {summary.chunks_embedded} of {summary.chunks_total} "
              f"chunks {'to embed' if summary.dry_run else 'embedded'}; {summary.seconds:.2f} s")
    for label, ids in (("added", summary.added), ("changed", summary.changed), ("removed", summary.removed)):
        if ids:
            out.print(f"  {label}: {', '.join(ids)}")
    if summary.note:
        out.print(summary.note)
    if summary.switched and not summary.dry_run:
        out.print(f"active version: {summary.version}")
    elif summary.version and not summary.dry_run and summary.note.startswith("the eval gate"):
        raise typer.Exit(3)


@app.command()
def status() -> None:
    """Show the active index version, its model and size, and documents changed since it was built.

    Example: partnerbot status
    """
    from partnerbot.index.build import status as get_status

    try:
        st = get_status(_settings())
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"active version: {st.version} (built {st.built_at})\nprevious: {st.previous or 'none'}\n"
              f"store: {st.store}\nembedding model: {st.embed_model}; chunks of {st.chunk_size} tokens, "
              f"overlap {st.chunk_overlap}\ndocuments: {st.documents}; chunks: {st.chunks}", highlight=False)
    if st.stale:
        out.print(f"[yellow]corpus changed since the build:[/yellow] {', '.join(st.stale)}; run `partnerbot index`")
    else:
        out.print("corpus unchanged since the build")


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
    from partnerbot.progress import step
    from partnerbot.serving import replies
    from partnerbot.serving.terminal import print_answer
    from partnerbot.types import Problem

    try:
        if url:
            if retriever:
                raise PartnerbotError("--retriever applies to the local assistant; a server answers with its own settings")
            from partnerbot.serving.remote import ask as ask_server

            result = ask_server(url, question, history or [])
        else:
            settings = _settings(retriever=retriever)
            with step(err, "loading the embedding model"):
                from partnerbot.answering import unanswered
                from partnerbot.answering.assistant import Assistant
                from partnerbot.index.embed import embed_model

                embed_model(settings)
            result = replies.ask(Assistant(settings, unanswered=unanswered.recorder(settings)), question, history or [])
    except StoreUnavailableError as exc:  # with --url: the server cannot be reached
        err.print(f"Error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(4) from exc
    except PartnerbotError as exc:
        _fail(exc)
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
        settings = _settings()
        with err.status("Loading the model and the index..."):
            assistant = Assistant(settings, unanswered=unanswered.recorder(settings))
            assistant.doc_ids()  # the active index version
            embed_model(settings)
    except StoreUnavailableError as exc:
        err.print(f"Error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(4) from exc
    except PartnerbotError as exc:
        _fail(exc)
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
        settings = _settings(host=host, port=port, log_level=log_level.lower() if log_level else None)
        with step(err, "starting the chat server"):
            from partnerbot.serving.page import serve as run_server
        run_server(settings, loading=lambda name: step(err, name))
    except PartnerbotError as exc:
        _fail(exc)


@app.command("eval")
def evaluate(
    cases: Annotated[list[Path] | None, typer.Option(
        "--cases", help="A cases file or folder (repeatable); default: the test split, <evals_dir>/test/.")] = None,
    retriever: Annotated[str | None, typer.Option(help="hybrid, dense or bm25.")] = None,
    answerer: Annotated[str | None, typer.Option(
        help="fitted (default): the quoted answers; generated: fitted, then written by the model at "
             "PARTNERBOT_LLM_URL and checked.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    compare: Annotated[Path | None, typer.Option(help="A previous JSON report to compare with.")] = None,
    check: Annotated[bool, typer.Option(help="Exit non-zero below the thresholds.")] = False,
    thresholds: Annotated[Path | None, typer.Option(
        help="Thresholds file for --check; default: <evals_dir>/thresholds.toml.")] = None,
) -> None:
    """Run evaluation cases through the assistant and report what passed, what failed and why.

    Example: partnerbot eval --check                (the test split, against evals/thresholds.toml)
             PARTNERBOT_LLM_URL=http://127.0.0.1:8080/v1 partnerbot eval --answerer generated
    """
    from partnerbot.evaluation.metrics import check_thresholds, load_cases, load_thresholds, report, run_cases
    from partnerbot.evaluation.metrics import compare as compare_reports
    from partnerbot.evaluation.report import print_report, render_html
    from partnerbot.progress import Steps, step

    try:
        if retriever not in (None, "hybrid", "dense", "bm25"):
            raise PartnerbotError(f"--retriever must be hybrid, dense or bm25, got {retriever!r}")
        if answerer not in (None, "fitted", "generated"):
            raise PartnerbotError(f"--answerer must be fitted or generated, got {answerer!r}")
        generated = answerer == "generated"
        # Only --answerer generated writes answers with a model; every other run measures the quoted answers.
        settings = _settings(retriever=retriever, llm_url=None if generated else "")
        if generated and not settings.llm_url:
            raise PartnerbotError("--answerer generated needs a model endpoint: set PARTNERBOT_LLM_URL "
                                  "(e.g. http://127.0.0.1:8080/v1) and PARTNERBOT_LLM_MODEL")
        paths = cases or [_existing(settings.test_cases, "test split", "evals_dir")]
        with step(err, "loading the embedding model"):
            from partnerbot.answering.assistant import Assistant
            from partnerbot.index.embed import embed_model

            embed_model(settings)
        assistant = Assistant(settings)
        loaded = load_cases(paths, assistant.doc_ids())
        with Steps(err) as steps:
            label = f"evaluating {len(loaded)} cases"
            steps(label, 0, len(loaded))
            results = run_cases(assistant, loaded, lambda _case: steps(label, 1, len(loaded)))
        data = report(results, retriever=settings.retriever, answerer=answerer or "fitted",
                      index_version=assistant.version)
        previous = None
        if compare:
            try:
                previous = json.loads(compare.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise PartnerbotError(f"{compare}: cannot read the previous report ({exc})") from exc
        comparison = compare_reports(data, previous) if previous else None
        if comparison:
            data["comparison"] = comparison
        print_report(data, out, comparison)
        if json_out:
            json_out.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        if html_out:
            html_out.write_text(render_html(data), encoding="utf-8")
        if check:
            thresholds = thresholds or settings.thresholds_path
            failed = check_thresholds(data["metrics"], load_thresholds(thresholds))
            if data["metrics"]["unavailable"]:
                failed.append(f"{data['metrics']['unavailable']} case(s) met an unavailable store")
            if failed:
                for line in failed:
                    err.print(f"[red]below threshold:[/red] {line}", highlight=False)
                raise typer.Exit(1)
            out.print(f"all thresholds in {thresholds} hold")
    except PartnerbotError as exc:
        _fail(exc)


@app.command()
def tune(
    cases: Annotated[Path | None, typer.Option(
        help="The train split (never the test split); default: <evals_dir>/train/.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the folds, the fine-tuning and the models.")] = 13,
    folds: Annotated[int, typer.Option(min=2, max=10, help="Groups for cross-fitting and cross-validation.")] = 3,
    epochs: Annotated[int, typer.Option(min=1, max=10, help="Fine-tuning epochs.")] = 1,
    target_wrong: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Cross-validated confident-wrong rate to calibrate answering for.")] = 0.02,
    target_false_refusal: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Share of in-scope train questions the scope threshold may decline.")] = 0.04,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the reader (default: the installed one).")] = None,
    model_out: Annotated[Path | None, typer.Option(
        help="Where to write the tuned embedding model (default: the installed one).")] = None,
) -> None:
    """Fine-tune the embedding model and fit the reader on the train split; print cross-validated figures.

    Then run `partnerbot index`: it embeds the corpus with the new model and records the new reader.

    Example: partnerbot tune --seed 13
    """
    from partnerbot.evaluation.tune import tune as fit

    try:
        settings = _settings()
        cases = cases or _existing(settings.train_cases, "train split", "evals_dir")
        if cases.resolve().is_relative_to(settings.test_cases.resolve()):
            raise PartnerbotError(f"{cases}: the test split is only ever measured; tune on {settings.train_cases}")
        err.print(f"tune: fine-tuning on {cases} ({folds} cross-fitting folds and a final model)", highlight=False)
        result = fit(settings, cases, seed=seed, folds=folds, epochs=epochs, target_wrong=target_wrong,
                     target_false_refusal=target_false_refusal, out=output, model_out=model_out,
                     log=lambda line: err.print(f"tune: {line}", highlight=False))
    except PartnerbotError as exc:
        _fail(exc)
    t = result.thresholds
    out.print(f"embedding model {result.model_sha256[:12]} written to {result.model_dir}\n"
              f"reader {result.selector_id} written to {result.path}\n"
              f"fitted on {result.cases} cases ({result.rows} candidate sentences, {result.triplets} training "
              f"triplets), C={result.c}, scope C={result.scope_c}\n"
              f"thresholds: scope {t.scope:.4f}, answer {t.answer:.4f}, extra {t.extra:.4f}\n"
              f"{folds}-fold cross-validated: " + ", ".join(f"{k} {v}" for k, v in result.figures.items())
              + "\nseconds: " + ", ".join(f"{k} {v}" for k, v in result.seconds.items())
              + "\nnow run `partnerbot index` to embed the corpus with the new model", highlight=False)


@app.command()
def splits(
    train: Annotated[Path | None, typer.Option(help="The train split; default: <evals_dir>/train/.")] = None,
    test: Annotated[Path | None, typer.Option(help="The test split; default: <evals_dir>/test/.")] = None,
    near: Annotated[float, typer.Option(min=0.5, max=1.0, help="List pairs at least this alike in meaning.")] = 0.95,
) -> None:
    """Check that no train question is also a test question; list the pairs that are nearly the same.

    Fails (exit 1) on any train case that asks a test case's question with the same history, ignoring case
    and punctuation. Pairs whose embeddings have a cosine of at least --near are listed for review.

    Example: partnerbot splits
    """
    from partnerbot.evaluation.cases import load_cases, near_questions, shared_questions
    from partnerbot.index.embed import embed_texts

    try:
        settings = _settings()
        train_cases = load_cases([train or _existing(settings.train_cases, "train split", "evals_dir")])
        test_cases = load_cases([test or _existing(settings.test_cases, "test split", "evals_dir")])
        same = shared_questions(train_cases, test_cases)
        close = near_questions(train_cases, test_cases, lambda texts: embed_texts(settings, texts), near)
    except PartnerbotError as exc:
        _fail(exc)
    for a, b, cos in close:
        out.print(f"near ({cos:.3f}): train {a.id!r} {a.question!r} ~ test {b.id!r} {b.question!r}",
                  highlight=False, markup=False)
    if same:
        for a, b in same:
            err.print(f"{a.file}: train case {a.id!r} asks the same as test case {b.id!r} ({b.file}): "
                      f"{b.question!r}", highlight=False, markup=False)
        err.print(f"{len(same)} train question(s) also in the test split: reword or remove them from the train split",
                  highlight=False)
        raise typer.Exit(1)
    out.print(f"{len(train_cases)} train and {len(test_cases)} test cases share no question; "
              f"{len(close)} pair(s) at cosine >= {near} listed above", highlight=False)


@app.command()
def calibrate(
    cases: Annotated[Path | None, typer.Option(
        help="The train split (never the test split); default: <evals_dir>/train/.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the threshold (default: the installed one).")] = None,
) -> None:
    """Calibrate the similarity threshold that generated sentences must reach, on the train split.

    Example: partnerbot calibrate
    """
    from partnerbot.evaluation.calibrate import calibrate as fit

    try:
        settings = _settings()
        cases = cases or _existing(settings.train_cases, "train split", "evals_dir")
        if cases.resolve().is_relative_to(settings.test_cases.resolve()):
            raise PartnerbotError(f"{cases}: the test split is only ever measured; calibrate on {settings.train_cases}")
        path, verifier = fit(settings, cases, output)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"similarity threshold {verifier.threshold:.4f} written to {path}\n"
              + ", ".join(f"{k} {v}" for k, v in (verifier.figures or {}).items()), highlight=False)


@feedback_app.command("export")
def feedback_export(
    to_evals: Annotated[Path, typer.Option("--to-evals", help="Cases file to write.")],
) -> None:
    """Turn the logged feedback questions into evaluation cases for staff to complete.

    Example: partnerbot feedback export --to-evals evals/from-feedback.yaml
    """
    from partnerbot.serving.feedback import export_cases

    try:
        settings = _settings()
        n = export_cases(settings.feedback_path, to_evals)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"wrote {n} case(s) to {to_evals}; review them before use")


@report_app.command("unanswered")
def report_unanswered(
    since: Annotated[dt.datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="Only questions logged on or after this date (YYYY-MM-DD).")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Also write the report as an HTML page.")] = None,
) -> None:
    """List the questions partnerbot refused, grouped by similarity, the most frequent group first.

    They are logged only while PARTNERBOT_LOG_UNANSWERED=1 is set for `serve`, `ask` or `chat`.

    Example: partnerbot report unanswered --since 2026-11-01 --html unanswered.html
    """
    from partnerbot.answering.unanswered import group, read
    from partnerbot.evaluation.report import print_unanswered, render_unanswered_html

    day = since.date() if since else None
    try:
        settings = _settings()
        entries, damaged = read(settings, day)
        with err.status("Grouping the questions (loading the model)..."):
            groups, left_out = group(settings, entries)
    except PartnerbotError as exc:
        _fail(exc)
    for place in damaged:
        err.print(f"skipped a damaged line: {place}", highlight=False, markup=False, soft_wrap=True)
    if not entries:
        note = "" if settings.log_unanswered else " (the log is off: set PARTNERBOT_LOG_UNANSWERED=1 to keep them)"
        out.print(f"no unanswered questions in {settings.unanswered_path}"
                  + (f" since {day.isoformat()}" if day else "") + note, highlight=False, markup=False)
    else:
        print_unanswered(groups, out, len(entries), day)
    if left_out:
        err.print(f"{left_out} rarer distinct wording(s) were left out of the grouping; narrow it with --since",
                  highlight=False)
    if html_out:
        html_out.write_text(render_unanswered_html(groups, len(entries), day), encoding="utf-8")
        out.print(f"wrote {html_out}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
