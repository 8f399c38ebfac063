"""Staff's commands: `eval`, `tune`, `splits` and `calibrate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from partnerbot.cli.common import app, err, existing, fail, out, settings_from
from partnerbot.errors import PartnerbotError


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
    from partnerbot.evaluation.report import print_report, render_html
    from partnerbot.evaluation.run import below_thresholds, eval_settings, evaluate
    from partnerbot.progress import Steps, step

    try:
        if retriever not in (None, "hybrid", "dense", "bm25"):
            raise PartnerbotError(f"--retriever must be hybrid, dense or bm25, got {retriever!r}")
        settings = eval_settings(settings_from(retriever=retriever), answerer)
        paths = cases or [existing(settings.test_cases, "test split", "evals_dir")]
        with step(err, "loading the embedding model"):
            from partnerbot.index.embed import embed_model

            embed_model(settings)
        with Steps(err) as steps:
            data = evaluate(settings, paths, answerer=answerer or "fitted", previous=compare, progress=steps)
        print_report(data, out, data.get("comparison"))
        if json_out:
            json_out.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        if html_out:
            html_out.write_text(render_html(data), encoding="utf-8")
        if check:
            thresholds = thresholds or settings.thresholds_path
            failed = below_thresholds(data, thresholds)
            if failed:
                for line in failed:
                    err.print(f"[red]below threshold:[/red] {line}", highlight=False)
                raise typer.Exit(1)
            out.print(f"all thresholds in {thresholds} hold")
    except PartnerbotError as exc:
        fail(exc)


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
    from partnerbot.evaluation.cases import train_only
    from partnerbot.evaluation.tune import tune as fit

    try:
        settings = settings_from()
        cases = train_only(cases or existing(settings.train_cases, "train split", "evals_dir"), settings, "tune")
        err.print(f"tune: fine-tuning on {cases} ({folds} cross-fitting folds and a final model)", highlight=False)
        result = fit(settings, cases, seed=seed, folds=folds, epochs=epochs, target_wrong=target_wrong,
                     target_false_refusal=target_false_refusal, out=output, model_out=model_out,
                     log=lambda line: err.print(f"tune: {line}", highlight=False))
    except PartnerbotError as exc:
        fail(exc)
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
        settings = settings_from()
        train_cases = load_cases([train or existing(settings.train_cases, "train split", "evals_dir")])
        test_cases = load_cases([test or existing(settings.test_cases, "test split", "evals_dir")])
        same = shared_questions(train_cases, test_cases)
        close = near_questions(train_cases, test_cases, lambda texts: embed_texts(settings, texts), near)
    except PartnerbotError as exc:
        fail(exc)
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
    from partnerbot.evaluation.cases import train_only

    try:
        settings = settings_from()
        cases = train_only(cases or existing(settings.train_cases, "train split", "evals_dir"), settings, "calibrate")
        path, verifier = fit(settings, cases, output)
    except PartnerbotError as exc:
        fail(exc)
    out.print(f"similarity threshold {verifier.threshold:.4f} written to {path}\n"
              + ", ".join(f"{k} {v}" for k, v in (verifier.figures or {}).items()), highlight=False)
