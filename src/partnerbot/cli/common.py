"""What every command shares: the Typer apps, the two consoles, settings from options, and error reporting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from partnerbot.errors import CorpusErrors, GateRefusedError, PartnerbotError, StoreUnavailableError
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


def settings_from(**overrides: Any) -> Settings:
    """`Settings` with the options given on the command line (None = not given) over the usual sources.

    Raises:
        PartnerbotError: the configuration is invalid; the message names the setting.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except PartnerbotError:  # a project file's own error already names the file
        raise
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise PartnerbotError(f"invalid configuration: {exc}") from exc


def warn(message: str) -> None:
    err.print(f"[yellow]Warning:[/yellow] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


def existing(path: Path, what: str, setting: str) -> Path:
    """`path` if it exists; otherwise an error naming it and the setting that points there."""
    if not path.exists():
        raise PartnerbotError(f"{what} not found: {path} (set {setting} in partnerbot.toml or [tool.partnerbot], "
                              f"or PARTNERBOT_{setting.upper()})")
    return path


# The exit code of each kind of error (its nearest class here); any other error exits 1.
EXIT_CODES: dict[type[PartnerbotError], int] = {CorpusErrors: 2, GateRefusedError: 3, StoreUnavailableError: 4}


def exit_code(exc: PartnerbotError) -> int:
    """The exit code for `exc`, by its type (`EXIT_CODES`)."""
    return next((EXIT_CODES[c] for c in type(exc).__mro__ if c in EXIT_CODES), 1)


def fail(exc: PartnerbotError) -> None:
    """Print the error and exit with its code: 2 invalid corpus, 3 refused by the eval gate, 4 unavailable, else 1."""
    err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(exit_code(exc))
