"""Where settings come from besides arguments: `PARTNERBOT_*` variables, the project root's `.env` and its file.

The project root is the nearest folder, at or above the current directory, holding a `partnerbot.toml` or
a `pyproject.toml` with a `[tool.partnerbot]` table. The sources are pydantic-settings' own: the
environment (`EnvSettingsSource`), the root's `.env` (`DotEnvSettingsSource`) and the project file
(`TomlConfigSettingsSource`: `partnerbot.toml`, or the `[tool.partnerbot]` table of `pyproject.toml`). This
module adds what they do not do: each source gives a settings class only its own fields (every settings
group reads the same flat names, `PARTNERBOT_CHUNK_SIZE`), relative paths from the root's files resolve
against the root, and a `PARTNERBOT_*` variable or a project-file key that is no setting is an error
naming it (`check_names`). It knows no setting by name beyond the folders whose defaults move to the root.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from partnerbot.errors import ConfigError

PROJECT_FILE = "partnerbot.toml"
PREFIX = "PARTNERBOT_"
TABLE = ("tool", "partnerbot")  # the table of pyproject.toml that holds the settings
# Path settings whose defaults move to the project root when there is one.
ROOTED_DEFAULTS = {"data_dir": ".partnerbot", "corpus_dir": "corpus", "evals_dir": "evals"}


@dataclass(frozen=True)
class Project:
    """A project root and the settings table found there."""

    root: Path
    file: Path
    table: dict[str, Any]
    where: str  # how the table is named in messages: "partnerbot.toml" or "[tool.partnerbot]"

    def file_source(self, settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
        """The project file's settings for `settings_cls`, read by pydantic-settings' TOML source."""
        source = TomlConfigSettingsSource(settings_cls, toml_file=self.file)
        return Own(source, self.root, table=() if self.where == PROJECT_FILE else TABLE)


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
            table: Any = _read_toml(pyproject)
            for key in TABLE:
                table = table.get(key) if isinstance(table, dict) else None
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


class Own(PydanticBaseSettingsSource):
    """Another source's values for the settings class's own fields only, relative paths resolved against `root`.

    Every settings group reads the same `.env` and project file, each taking its own names from them.
    """

    def __init__(self, source: PydanticBaseSettingsSource, root: Path | None = None, table: tuple[str, ...] = ()):
        """`table`: the keys of the table, within what `source` reads, that holds the settings (`tool.partnerbot`)."""
        super().__init__(source.settings_cls)
        self.source = source
        self.root = root
        self.table = table

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: `__call__` takes the wrapped source's values at once

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        found: Any = self.source()
        for key in self.table:
            found = found.get(key, {}) if isinstance(found, dict) else {}
        return {k: resolve(fields[k], v, self.root) if self.root else v
                for k, v in found.items() if k in fields}


def sources(settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource,
            rooted_defaults: bool = False) -> tuple[PydanticBaseSettingsSource, ...]:
    """A settings class's sources, highest priority first: arguments, the environment, `.env`, the project file
    (and, with `rooted_defaults`, the folders' defaults at the project root).

    Raises:
        ConfigError: a project file is not valid TOML.
    """
    env = EnvSettingsSource(settings_cls, env_prefix=PREFIX, case_sensitive=False)
    project = find_project(Path.cwd())
    if project is None:
        return init, env, Own(DotEnvSettingsSource(settings_cls, env_file=Path(".env"), env_prefix=PREFIX))
    dotenv = Own(DotEnvSettingsSource(settings_cls, env_file=project.root / ".env", env_prefix=PREFIX), project.root)
    found: tuple[PydanticBaseSettingsSource, ...] = (init, env, dotenv, project.file_source(settings_cls))
    if rooted_defaults:
        defaults = InitSettingsSource(settings_cls, {k: str(project.root / v) for k, v in ROOTED_DEFAULTS.items()})
        found += (Own(defaults),)
    return found


def check_names(settings_cls: type[BaseSettings], known: set[str]) -> None:
    """Every `PARTNERBOT_*` variable (the environment, the `.env` file) and every project-file key is a setting.

    Raises:
        ConfigError: one that is not, named with where it was found and the known names.
    """
    project = find_project(Path.cwd())
    env_file = project.root / ".env" if project else Path(".env")
    places = [("the environment", EnvSettingsSource(settings_cls, env_prefix=PREFIX, case_sensitive=False).env_vars),
              (str(env_file), DotEnvSettingsSource(settings_cls, env_file=env_file, env_prefix=PREFIX).env_vars)]
    listing = ", ".join(sorted(known))
    for where, variables in places:
        unknown = sorted(k.upper() for k in variables if k.upper().startswith(PREFIX)
                         and k[len(PREFIX):].lower() not in known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)} in {where}; known (after {PREFIX}, in upper "
                              f"case): {listing}")
    if project is not None:
        unknown = sorted(set(project.table) - known)
        if unknown:
            raise ConfigError(f"{project.file}: unknown setting(s) {', '.join(unknown)} in {project.where}; "
                              f"known: {listing}")
