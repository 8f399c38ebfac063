"""The sentence-transformers model, loaded once per process through llama-index."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .settings import Settings

# Never reach a model hub: the model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@functools.lru_cache(maxsize=4)
def _load(model_path: str) -> Any:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=model_path, device="cpu", normalize=True, embed_batch_size=64)


def embed_model(settings: Settings) -> Any:
    """llama-index's `HuggingFaceEmbedding` over the configured local model."""
    return _load(settings.model_path)


@functools.lru_cache(maxsize=4)
def _tokenizer(model_path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, local_files_only=True)


def token_splitter(settings: Settings) -> Callable[[str], list[str]]:
    """llama-index's `SentenceSplitter`, counting the embedding model's own tokens."""
    from llama_index.core.node_parser import SentenceSplitter

    tok = _tokenizer(settings.model_path)
    splitter = SentenceSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        tokenizer=lambda text: tok.tokenize(text),
    )
    return splitter.split_text  # type: ignore[no-any-return]


def embed_texts(settings: Settings, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Unit-length embeddings of `texts`, in batches; `on_batch(n)` reports progress."""
    model = embed_model(settings)
    out: list[list[float]] = []
    for i in range(0, len(texts), 64):
        batch = list(texts[i : i + 64])
        out.extend(model.get_text_embedding_batch(batch))
        if on_batch:
            on_batch(len(batch))
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def embed_query(settings: Settings, text: str) -> np.ndarray:
    """The unit-length embedding of one question."""
    return np.asarray(embed_model(settings).get_query_embedding(text), dtype=np.float32)
