"""The `partnerbot` command line: each command checks its options, calls one function, reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .errors import CorpusErrors, PartnerbotError
from .phrases import GENERATED_NOTE
from .settings import Settings

app = typer.Typer(help="partnerbot: cited answers about ICE partnership programs.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
corpus_app = typer.Typer(help="Check the corpus.", no_args_is_help=True)
feedback_app = typer.Typer(help="Work with the feedback log.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(feedback_app, name="feedback")
out = Console()
err = Console(stderr=True)
EVALS = Path("evals")
TRAIN_CASES = EVALS / "train"
TEST_CASES = EVALS / "test"
DEFAULT_THRESHOLDS = EVALS / "thresholds.toml"


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise PartnerbotError(f"invalid configuration: {exc}") from exc


def _fail(exc: PartnerbotError) -> None:
    err.print(f"[bold red]Error:[/bold red] {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, CorpusErrors) else 1)


@corpus_app.command("check")
def corpus_check(corpus: Annotated[Path | None, typer.Option(help="Corpus folder.")] = None) -> None:
    """Validate every corpus file; exit non-zero on any problem.

    Example: partnerbot corpus check --corpus corpus/
    """
    from .corpus import load_corpus

    try:
        settings = _settings(corpus_dir=corpus)
        docs = load_corpus(settings.corpus_dir)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"corpus OK: {len(docs)} documents in {settings.corpus_dir}")


@app.command()
def index(
    rebuild: Annotated[bool, typer.Option(help="Ignore the active version and embed everything.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print what would change; write nothing.")] = False,
    rollback: Annotated[bool, typer.Option(help="Make the previous version active again.")] = False,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Skip the eval gate (e.g. a first build).")] = False,
    force: Annotated[bool, typer.Option(help="Switch even if the eval gate fails.")] = False,
    cases: Annotated[Path, typer.Option(help="Cases (a file or folder) for the eval gate.")] = EVALS,
) -> None:
    """Validate the corpus and build a new index version, switching to it when it is complete.

    Example: partnerbot index            (incremental: only changed documents are embedded)
             partnerbot index --rollback
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .evals import reindex_gate
    from .index import build_index
    from .index import rollback as do_rollback

    try:
        settings = _settings()
        if rollback:
            pointer = do_rollback(settings)
            out.print(f"rolled back: active version is now {pointer.version} (previous: {pointer.previous})")
            return
        gate = None
        if settings.eval_gate and not (no_eval or force or dry_run) and cases.exists():
            gate = reindex_gate(settings, cases)
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("embedding", total=None)

            def progress(stage: str, advance: int, total: int) -> None:
                bar.update(task, total=total, advance=advance, description=stage)

            summary = build_index(settings, rebuild=rebuild, dry_run=dry_run, progress=progress, gate=gate)
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
    from .index import status as get_status

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
) -> None:
    """Answer one question from the corpus, with numbered sources.

    Exit codes: 0 answered or declined, 1 error, 4 the document store is unavailable.

    Example: partnerbot ask "When were they created?" --history "What is BEST?"
    """
    from .answer import Assistant

    try:
        answer = Assistant(_settings(retriever=retriever)).ask(question, history or [])
    except PartnerbotError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2) + "\n")
    if answer.unavailable:  # an outage is not a refusal: say so, and exit with its own code
        err.print(f"Error: {answer.text}", highlight=False, markup=False)
        raise typer.Exit(4)
    if as_json:
        return
    if answer.mode == "generated":
        out.print(GENERATED_NOTE, style="italic", highlight=False, markup=False)
    out.print(answer.text, highlight=False, markup=False)
    for s in answer.sources:
        out.print(f"\n[{s.n}] {s.title} (as of {s.date}) - {s.section}\n    {s.url}\n    \"{s.quote}\"",
                  highlight=False, markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860).")] = None,
) -> None:
    """Serve the chat page and the `/ask` API.

    Example: partnerbot serve --port 7860
    """
    from .ui import serve as run_server

    try:
        run_server(_settings(host=host, port=port))
    except PartnerbotError as exc:
        _fail(exc)


@app.command("eval")
def evaluate(
    cases: Annotated[list[Path] | None, typer.Option(
        "--cases", help="A cases file or folder (repeatable); default: the test split, evals/test/.")] = None,
    retriever: Annotated[str | None, typer.Option(help="hybrid, dense or bm25.")] = None,
    answerer: Annotated[str | None, typer.Option(
        help="fitted (default); heuristic: the hand-set answerer, for a side-by-side comparison; generated: "
             "fitted, then written by the model at PARTNERBOT_LLM_URL and checked.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    compare: Annotated[Path | None, typer.Option(help="A previous JSON report to compare with.")] = None,
    check: Annotated[bool, typer.Option(help="Exit non-zero below the thresholds.")] = False,
    thresholds: Annotated[Path, typer.Option(help="Thresholds file for --check.")] = DEFAULT_THRESHOLDS,
) -> None:
    """Run evaluation cases through the assistant and report what passed, what failed and why.

    Example: partnerbot eval --check                (the test split, against evals/thresholds.toml)
             partnerbot eval --answerer heuristic --json heuristic.json
             PARTNERBOT_LLM_URL=http://127.0.0.1:8080/v1 partnerbot eval --answerer generated
    """
    from .answer import Assistant
    from .evals import check_thresholds, load_cases, load_thresholds, report, run_cases
    from .evals import compare as compare_reports
    from .report import print_report, render_html

    try:
        if retriever not in (None, "hybrid", "dense", "bm25"):
            raise PartnerbotError(f"--retriever must be hybrid, dense or bm25, got {retriever!r}")
        if answerer not in (None, "fitted", "heuristic", "generated"):
            raise PartnerbotError(f"--answerer must be fitted, heuristic or generated, got {answerer!r}")
        generated = answerer == "generated"
        # Only --answerer generated writes answers with a model; every other run measures the quoted answers.
        settings = _settings(retriever=retriever, answerer="fitted" if generated else answerer,
                             llm_url=None if generated else "")
        if generated and not settings.llm_url:
            raise PartnerbotError("--answerer generated needs a model endpoint: set PARTNERBOT_LLM_URL "
                                  "(e.g. http://127.0.0.1:8080/v1) and PARTNERBOT_LLM_MODEL")
        assistant = Assistant(settings)
        loaded = load_cases(cases or [TEST_CASES], assistant.doc_ids())
        results = run_cases(assistant, loaded)
        data = report(results, retriever=settings.retriever, answerer=answerer or settings.answerer,
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
    cases: Annotated[Path, typer.Option(help="The train split (never the test split).")] = TRAIN_CASES,
    seed: Annotated[int, typer.Option(help="Seeds the folds and the model.")] = 13,
    folds: Annotated[int, typer.Option(min=2, max=20, help="k of the k-fold cross-validation.")] = 5,
    target_wrong: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Cross-validated wrong-answer rate to calibrate refusal for.")] = 0.02,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the selector (default: the installed one).")] = None,
) -> None:
    """Fit the answer selector and calibrate refusal on the train split; print cross-validated figures.

    Then run `partnerbot index` so the index records the new selector.

    Example: partnerbot tune --seed 13
    """
    from .tune import tune as fit

    try:
        if cases.resolve().is_relative_to(TEST_CASES.resolve()):
            raise PartnerbotError(f"{cases}: the test split is only ever measured; tune on {TRAIN_CASES}")
        result = fit(_settings(), cases, seed=seed, folds=folds, target_wrong=target_wrong, out=output)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"selector {result.selector_id} written to {result.path}\n"
              f"fitted on {result.cases} cases ({result.rows} candidate sentences), C={result.c}\n"
              f"{folds}-fold cross-validated: " + ", ".join(f"{k} {v}" for k, v in result.figures.items())
              + "\nnow run `partnerbot index` to record it", highlight=False)


@app.command()
def calibrate(
    cases: Annotated[Path, typer.Option(help="The train split (never the test split).")] = TRAIN_CASES,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the threshold (default: the installed one).")] = None,
) -> None:
    """Calibrate the similarity threshold that generated sentences must reach, on the train split.

    Example: partnerbot calibrate
    """
    from .calibrate import calibrate as fit

    try:
        if cases.resolve().is_relative_to(TEST_CASES.resolve()):
            raise PartnerbotError(f"{cases}: the test split is only ever measured; calibrate on {TRAIN_CASES}")
        path, verifier = fit(_settings(), cases, output)
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
    from .feedback import export_cases

    try:
        settings = _settings()
        n = export_cases(settings.feedback_path, to_evals)
    except PartnerbotError as exc:
        _fail(exc)
    out.print(f"wrote {n} case(s) to {to_evals}; review them before use")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
