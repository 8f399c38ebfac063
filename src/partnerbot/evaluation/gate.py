"""The reindex gate: `partnerbot index` switches to a new version only if its eval figures hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partnerbot.errors import EvalError, IndexMismatchError
from partnerbot.evaluation.cases import Case, load_cases
from partnerbot.evaluation.metrics import CaseResult, metrics, run_cases


def reindex_gate(settings: Any, cases_path: Path, progress: Any = None) -> Any:
    """A gate for `build_index`: the new version may not pass fewer cases than the active one.

    `cases_path` is a cases file or a folder of them (the project gates on every split);
    `progress(stage, advance, total)` is told as each of the two eval runs goes.
    """
    from partnerbot.answering.assistant import Assistant
    from partnerbot.answering.reader import Reader
    from partnerbot.index import store
    from partnerbot.index.snapshots import IndexSnapshots

    def run(label: str, version: str, cases: list[Case]) -> list[CaseResult]:
        stage = f"eval gate: {label} version {version}"
        if progress:
            progress(stage, 0, len(cases))
        step = (lambda _case: progress(stage, 1, len(cases))) if progress else None
        assistant = Assistant(settings, snapshots=IndexSnapshots(settings, pinned=version, check_selector=False),
                              reader=Reader.load(settings, check_model=False))
        return run_cases(assistant, cases, step)

    def gate(version: str) -> tuple[bool, str]:
        try:
            active = store.read_pointer(store.connect(settings)).version
        except Exception:
            return True, "no active version to compare with"
        cases = load_cases([cases_path])
        try:
            old = run("active", active, cases)
        except IndexMismatchError as exc:  # e.g. embedded with the model a new `tune` replaced
            return True, f"eval gate: the active version cannot be compared ({exc})"
        try:
            new = run("new", version, cases)
        except EvalError as exc:
            return False, f"the eval gate kept the active version: {exc}. Fix the case or the corpus, or rerun with --force."
        before, after = metrics(old)["pass_rate"], metrics(new)["pass_rate"]
        broke = [n.id for o, n in zip(old, new, strict=True) if o.passed and not n.passed]
        if after < before:
            return False, (f"the eval gate kept the active version: pass_rate would fall from {before} to {after}; "
                           f"broken cases: {', '.join(broke)}. Fix the corpus, or rerun with --force.")
        return True, f"eval gate passed: pass_rate {before} -> {after}"

    return gate
