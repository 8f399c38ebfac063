"""Maintainers' commands: `corpus check|sources`, `index`, `status`, `feedback export`, `report unanswered`."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from partnerbot.cli.common import (
    app,
    corpus_app,
    err,
    existing,
    fail,
    feedback_app,
    out,
    report_app,
    settings_from,
    warn,
)
from partnerbot.errors import GateRefusedError, PartnerbotError


@corpus_app.command("check")
def corpus_check(corpus: Annotated[Path | None, typer.Option(help="Corpus folder.")] = None) -> None:
    """Validate every corpus file; exit non-zero on any problem.

    Example: partnerbot corpus check --corpus corpus/
    """
    from partnerbot.corpus.parse import load_corpus

    try:
        settings = settings_from(corpus_dir=corpus)
        docs = load_corpus(settings.corpus_dir)
    except PartnerbotError as exc:
        fail(exc)
    out.print(f"corpus OK: {len(docs)} documents in {settings.corpus_dir}")


@corpus_app.command("sources")
def corpus_sources(
    write: Annotated[Path | None, typer.Option(help="Update the generated listing in this file (e.g. docs/corpus-sources.md).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder.")] = None,
) -> None:
    """List the pages each program document cites, with their as-of dates.

    Example: partnerbot corpus sources --write docs/corpus-sources.md
    """
    from partnerbot.corpus.footnotes import footnote_listing, with_footnote_listing
    from partnerbot.corpus.parse import load_corpus

    try:
        docs = load_corpus(settings_from(corpus_dir=corpus).corpus_dir)
    except PartnerbotError as exc:
        fail(exc)
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
    from partnerbot.evaluation.gate import reindex_gate
    from partnerbot.index.build import build_index
    from partnerbot.index.rollback import rollback as do_rollback
    from partnerbot.progress import Steps

    try:
        settings = settings_from()
        if rollback:
            pointer = do_rollback(settings, notify=warn)
            out.print(f"rolled back: active version is now {pointer.version} (previous: {pointer.previous})")
            return
        existing(settings.corpus_dir, "corpus folder", "corpus_dir")
        with Steps(err) as steps:
            gate = None
            if settings.index.eval_gate and not (no_eval or force or dry_run):
                where = cases or existing(settings.evals_dir, "evals folder (for the eval gate; --no-eval skips it)",
                                           "evals_dir")
                gate = reindex_gate(settings, existing(where, "eval gate cases", "evals_dir"), steps)
            summary = build_index(settings, rebuild=rebuild, dry_run=dry_run, progress=steps, gate=gate,
                                  notify=warn)
    except PartnerbotError as exc:
        fail(exc)
    verb = "would change" if summary.dry_run else "changed"
    out.print(f"added {len(summary.added)}, {verb} {len(summary.changed)}, removed {len(summary.removed)}, "
              f"unchanged {len(summary.unchanged)} documents; {summary.chunks_embedded} of {summary.chunks_total} "
              f"chunks {'to embed' if summary.dry_run else 'embedded'}; {summary.seconds:.2f} s")
    for label, ids in (("added", summary.added), ("changed", summary.changed), ("removed", summary.removed)):
        if ids:
            out.print(f"  {label}: {', '.join(ids)}")
    if summary.note:
        out.print(summary.note)
    if summary.gate is not None and not summary.gate.passed:
        fail(GateRefusedError(summary.gate.message))
    if summary.switched and not summary.dry_run:
        out.print(f"active version: {summary.version}")


@app.command()
def status() -> None:
    """Show the active index version, its model and size, and documents changed since it was built.

    Example: partnerbot status
    """
    from partnerbot.index.status import status as get_status

    try:
        st = get_status(settings_from())
    except PartnerbotError as exc:
        fail(exc)
    out.print(f"active version: {st.version} (built {st.built_at})\nprevious: {st.previous or 'none'}\n"
              f"store: {st.store}\nembedding model: {st.embed_model}; chunks of {st.chunk_size} tokens, "
              f"overlap {st.chunk_overlap}\ndocuments: {st.documents}; chunks: {st.chunks}", highlight=False)
    if st.corpus_error:
        out.print(f"[yellow]the corpus is invalid, so it was not compared with the build:[/yellow] "
                  f"{escape(st.corpus_error)}; run `partnerbot corpus check`")
    elif st.stale:
        out.print(f"[yellow]corpus changed since the build:[/yellow] {', '.join(st.stale)}; run `partnerbot index`")
    else:
        out.print("corpus unchanged since the build")


@feedback_app.command("export")
def feedback_export(
    to_evals: Annotated[Path, typer.Option("--to-evals", help="Cases file to write.")],
) -> None:
    """Turn the logged feedback questions into evaluation cases for staff to complete.

    Example: partnerbot feedback export --to-evals evals/from-feedback.yaml
    """
    from partnerbot.serving.feedback import export_cases

    try:
        settings = settings_from()
        n = export_cases(settings.feedback_path, to_evals)
    except PartnerbotError as exc:
        fail(exc)
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
        settings = settings_from()
        entries, damaged = read(settings, day)
        with err.status("Grouping the questions (loading the model)..."):
            groups, left_out = group(settings, entries)
    except PartnerbotError as exc:
        fail(exc)
    for place in damaged:
        err.print(f"skipped a damaged line: {place}", highlight=False, markup=False, soft_wrap=True)
    if not entries:
        note = "" if settings.answering.log_unanswered else " (the log is off: set PARTNERBOT_LOG_UNANSWERED=1 to keep them)"
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
