"""Where settings come from besides arguments: the project root's file and `PARTNERBOT_*` variables.

The project root is the nearest folder, at or above the current directory, holding a `partnerbot.toml` or
a `pyproject.toml` with a `[tool.partnerbot]` table. Relative paths in that file and in the root's `.env`
resolve against the root. `settings.Settings` reads these sources; this module knows no setting by name
beyond the folders whose defaults move to the root.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from partnerbot.errors import ConfigError

PROJECT_FILE = "partnerbot.toml"
# Path settings whose defaults move to the project root when there is one.
ROOTED_DEFAULTS = {"data_dir": ".partnerbot", "corpus_dir": "corpus", "evals_dir": "evals"}
PREFIX = "PARTNERBOT_"


def dotenv(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values

    return dict(dotenv_values(path)) if path.is_file() else {}


class Variables(PydanticBaseSettingsSource):
    """Settings from `PARTNERBOT_<NAME>` variables (the environment or a `.env` file), by name.

    Other tools' variables are ignored. An unknown `PARTNERBOT_*` name is passed on, so that validation
    names it as an extra input, unless `unknown_is_error` is off (the environment may hold anything).
    Relative paths resolve against `root` when one is given.
    """

    def __init__(self, settings_cls: type[BaseSettings], fields: dict[str, FieldInfo],
                 variables: dict[str, str | None], *, unknown_is_error: bool = True, root: Path | None = None):
        super().__init__(settings_cls)
        self.fields = fields
        self.variables = variables
        self.unknown_is_error = unknown_is_error
        self.root = root

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: `__call__` reads every variable at once

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.variables.items():
            if not key.upper().startswith(PREFIX) or value is None:
                continue
            name = key[len(PREFIX):].lower()
            if name in self.fields:
                out[name] = resolve(self.fields[name], value, self.root) if self.root else value
            elif self.unknown_is_error:
                out[name] = value
        return out


@dataclass(frozen=True)
class Project:
    """A project root and the settings table found there."""

    root: Path
    file: Path
    table: dict[str, Any]
    where: str  # how the table is named in messages: "partnerbot.toml" or "[tool.partnerbot]"

    def values(self, fields: dict[str, FieldInfo]) -> dict[str, Any]:
        """The table's settings by name, relative paths resolved against the root, over root-based defaults.

        Raises:
            ConfigError: a key that is not a setting.
        """
        unknown = sorted(set(self.table) - set(fields))
        if unknown:
            raise ConfigError(f"{self.file}: unknown setting(s) {', '.join(unknown)} in {self.where}; "
                              f"known: {', '.join(sorted(fields))}")
        rooted = {k: str(self.root / v) for k, v in ROOTED_DEFAULTS.items()}
        return rooted | {k: resolve(fields[k], v, self.root) for k, v in self.table.items()}


def find_project(start: Path) -> Project | None:
    """The nearest project root at or above `start`, or None.

    Raises:
        ConfigError: a project file is not valid TOML.
    """
    for folder in (start, *start.parents):
        own = folder / PROJECT_FILE
        if own.is_file():
            return Project(folder, own, _read_toml(own), PROJECT_FILE)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("partnerbot")
            if isinstance(table, dict):
                return Project(folder, pyproject, table, "[tool.partnerbot]")
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the project settings ({exc})") from exc


def resolve(field: FieldInfo, value: Any, root: Path) -> Any:
    """A relative path setting, made absolute against the project root; other values unchanged."""
    if field.annotation is Path and isinstance(value, str) and value and not Path(value).is_absolute():
        return str(root / value)
    return value
