"""Named progress for slow steps, on stderr: a spinner or bar in a terminal, one line per step in a log."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Steps:
    """A `Progress` callback, `(stage, advance, total)`, that names each stage as it starts.

    `total` 0 means a step of unknown length (a spinner). Outside a terminal, each stage is one
    line, `<stage>...`, so logs show what a slow run was doing.
    """

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True, disable=not self.live)
        self._task: TaskID | None = None
        self._stage: str | None = None

    def __enter__(self) -> Steps:
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.stop()

    def __call__(self, stage: str, advance: int, total: int) -> None:
        if stage != self._stage:
            self._stage = stage
            if not self.live:
                self.console.print(f"{stage}...", highlight=False, markup=False, soft_wrap=True)
            if self._task is None:
                self._task = self._bar.add_task(stage, total=total or None)
            else:
                self._bar.reset(self._task, total=total or None, description=stage)
        if self._task is not None:
            self._bar.update(self._task, advance=advance)


@contextlib.contextmanager
def step(console: Console, name: str) -> Iterator[None]:
    """Show `name` with a spinner while the block runs (one `<name>...` line outside a terminal)."""
    with Steps(console) as steps:
        steps(name, 0, 0)
        yield
