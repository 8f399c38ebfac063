"""The errors a user can act on. Each message says what to do next."""

from __future__ import annotations

from pathlib import Path


class PartnerbotError(Exception):
    """Base class for every error partnerbot reports to a user."""


class CorpusError(PartnerbotError):
    """A corpus file is invalid; names the file, the field and the line."""

    def __init__(self, path: Path | str, message: str, field: str | None = None, line: int | None = None):
        self.path = str(path)
        self.field = field
        self.line = line
        self.message = message
        where = self.path + (f":{line}" if line else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class CorpusErrors(PartnerbotError):
    """Several corpus problems at once, reported together."""

    def __init__(self, errors: list[CorpusError]):
        self.errors = errors
        self.doc_id: str | None = None
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{len(errors)} problem(s) in the corpus:\n{lines}")


class IndexNotBuiltError(PartnerbotError):
    """No usable active index version exists."""


class PointerDamagedError(IndexNotBuiltError):
    """The store holds an active-version pointer, but it cannot be read (its record is missing or malformed)."""


class IndexMismatchError(PartnerbotError):
    """The active index was built with other settings than the current ones."""


class ModelChangedError(IndexMismatchError):
    """The index was embedded with another embedding model (name or weights) than the one configured."""


class IndexLockedError(PartnerbotError):
    """Another `partnerbot index` run holds the lock."""


class StoreError(PartnerbotError):
    """The vector store answered with an error (`store.failures` tells it by the exception's type)."""


class StoreUnavailableError(StoreError):
    """The vector store cannot be reached."""


class InputError(PartnerbotError):
    """A question or an option is unusable as given; `field` names the piece of input (`question`, `history[2]`)."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


class GateRefusedError(PartnerbotError):
    """The reindex gate kept the active version: the new one passes fewer cases (or cannot be compared)."""


class EvalError(PartnerbotError):
    """An evaluation cases file is invalid; names the file and the case."""


class SelectorError(PartnerbotError):
    """The fitted answer selector is missing, altered or does not fit this version of partnerbot."""


class ConfigError(PartnerbotError):
    """A project settings file (partnerbot.toml, [tool.partnerbot]) is unreadable or names an unknown setting."""


class ModelArtifactError(PartnerbotError):
    """A tuned embedding model is missing its manifest or weights, or its weights do not match their recorded hash."""
