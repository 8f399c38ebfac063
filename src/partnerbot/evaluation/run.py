"""`partnerbot eval` as one call: run the cases through the assistant, build the report, compare, check gates.

The command line only parses options and prints; everything an evaluation run decides is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from partnerbot.errors import PartnerbotError
from partnerbot.evaluation.cases import load_cases
from partnerbot.evaluation.metrics import check_thresholds, compare, load_thresholds, report, run_cases
from partnerbot.settings import Settings

Progress = Callable[[str, int, int], None]
ANSWERERS = ("fitted", "generated")


def eval_settings(settings: Settings, answerer: str | None) -> Settings:
    """The settings an eval run answers with: only `answerer="generated"` writes answers with a model.

    Raises:
        PartnerbotError: an unknown answerer, or "generated" without a model endpoint.
    """
    if answerer not in (None, *ANSWERERS):
        raise PartnerbotError(f"--answerer must be {' or '.join(ANSWERERS)}, got {answerer!r}")
    generated = answerer == "generated"
    if generated and not settings.generation.llm_url:
        raise PartnerbotError("--answerer generated needs a model endpoint: set PARTNERBOT_LLM_URL "
                              "(e.g. http://127.0.0.1:8080/v1) and PARTNERBOT_LLM_MODEL")
    return settings if generated else settings.updated(llm_url="")


def evaluate(settings: Settings, paths: Sequence[Path], *, answerer: str = "fitted",
             previous: Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the cases in `paths` through a fresh `Assistant` and return the report (see `metrics.report`).

    With `previous` (an earlier JSON report), the report carries a `comparison` with it.

    Raises:
        PartnerbotError: no usable index or reader, unreadable cases or an unreadable previous report.
    """
    from partnerbot.answering.assistant import Assistant

    assistant = Assistant(settings)
    cases = load_cases(list(paths), assistant.doc_ids())
    label = f"evaluating {len(cases)} cases"
    if progress:
        progress(label, 0, len(cases))
    step = (lambda _case: progress(label, 1, len(cases))) if progress else None
    results = run_cases(assistant, cases, step)
    data = report(results, retriever=settings.retrieval.retriever, answerer=answerer, index_version=assistant.version)
    if previous is not None:
        try:
            earlier = json.loads(previous.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PartnerbotError(f"{previous}: cannot read the previous report ({exc})") from exc
        comparison = compare(data, earlier)
        if comparison:
            data["comparison"] = comparison
    return data


def below_thresholds(data: dict[str, Any], thresholds: Path) -> list[str]:
    """Each gate in `thresholds` that the report's metrics miss, and any case that met an unavailable store.

    Raises:
        EvalError: the thresholds file is missing or invalid.
    """
    failed = check_thresholds(data["metrics"], load_thresholds(thresholds))
    if data["metrics"]["unavailable"]:
        failed.append(f"{data['metrics']['unavailable']} case(s) met an unavailable store")
    return failed
