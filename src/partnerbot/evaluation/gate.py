"""The reindex gate: `partnerbot index` switches to a new version only if its eval figures hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from partnerbot.errors import EvalError, IndexMismatchError, IndexNotBuiltError, PointerDamagedError
from partnerbot.evaluation.cases import Case, load_cases
from partnerbot.evaluation.metrics import CaseResult, metrics, run_cases
from partnerbot.settings import Settings
from partnerbot.types import Gate, GateVerdict

Progress = Callable[[str, int, int], None]  # (stage, advance, total)


def reindex_gate(settings: Settings, cases_path: Path, progress: Progress | None = None) -> Gate:
    """A gate for `build_index`: the new version may not pass fewer cases than the active one.

    `cases_path` is a cases file or a folder of them (the project gates on every split);
    `progress(stage, advance, total)` is told as each of the two eval runs goes.

    The gate passes a version when there is nothing to compare it with (no index was ever built, or the
    active version was built with another model), and refuses it when the active version's pointer is
    damaged: a gate that cannot read what it protects does not let a version through unseen.
    The gate raises what it cannot decide on: `StoreError`/`StoreUnavailableError` (the store failed or
    cannot be reached), `SelectorError` (no usable reader).
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

    def gate(version: str) -> GateVerdict:
        try:
            active = store.read_pointer(store.connect(settings)).version
        except PointerDamagedError as exc:
            return GateVerdict(False, f"the eval gate kept the active version: it cannot read it ({exc}). "
                                      "Rerun with --force to switch anyway.")
        except IndexNotBuiltError:
            return GateVerdict(True, "no active version to compare with")
        cases = load_cases([cases_path])
        try:
            old = run("active", active, cases)
        except IndexMismatchError as exc:  # e.g. embedded with the model a new `tune` replaced
            return GateVerdict(True, f"eval gate: the active version cannot be compared ({exc})")
        try:
            new = run("new", version, cases)
        except EvalError as exc:
            return GateVerdict(False, f"the eval gate kept the active version: {exc}. Fix the case or the corpus, "
                                      "or rerun with --force.")
        before, after = metrics(old)["pass_rate"], metrics(new)["pass_rate"]
        broke = [n.id for o, n in zip(old, new, strict=True) if o.passed and not n.passed]
        if after < before:
            return GateVerdict(False, f"the eval gate kept the active version: pass_rate would fall from {before} "
                                      f"to {after}; broken cases: {', '.join(broke)}. Fix the corpus, or rerun "
                                      "with --force.")
        return GateVerdict(True, f"eval gate passed: pass_rate {before} -> {after}")

    return gate
