"""What an index version records about what built it, and the check that a reader can use it.

Both sides of the index use this module: `build` writes the record, `read` checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partnerbot.errors import IndexMismatchError, ModelChangedError
from partnerbot.index import store
from partnerbot.settings import Settings

# Settings a version must share with the reader; a difference needs `index --rebuild`.
EMBEDDING_KEYS = ("pb_model", "pb_model_sha256", "pb_chunk_size", "pb_chunk_overlap", "pb_sentence_text")
# The embedding model's name and weights: a difference re-embeds everything (`partnerbot index` does it).
MODEL_KEYS = ("pb_model", "pb_model_sha256")
# What a sentence vector embeds (see `chunk.sentence_context`); raise it when that changes.
SENTENCE_TEXT = "title-section-sentence/1"
# What a version stores beside the vectors (a sentence's supporting pages); raise it when that changes.
LAYOUT = "sentence-pages/1"


def build_meta(settings: Settings, selector_id: str = "") -> dict[str, Any]:
    """What a version records about what built it: the embedding settings and the selector artifact."""
    return {
        "pb_model": settings.index.embedding().name,
        "pb_model_sha256": settings.index.embedding().sha256,
        "pb_chunk_size": settings.index.chunk_size,
        "pb_chunk_overlap": settings.index.chunk_overlap,
        "pb_sentence_text": SENTENCE_TEXT,
        "pb_selector": selector_id,
        "pb_layout": LAYOUT,
    }


def check_meta(meta: dict[str, Any], settings: Settings, version: str, selector_id: str | None = None,
               readable: bool = True) -> None:
    """Raise `IndexMismatchError` unless `meta` was built with the current settings (and selector, if given).

    `readable` also requires this version's layout; a build only needs the vectors to be reusable.
    """
    want = build_meta(settings)
    if any(meta.get(k) != want[k] for k in MODEL_KEYS):
        raise ModelChangedError(
            f"index version {version} was built with another embedding model: {meta.get('pb_model')!r}, weights "
            f"sha256 {str(meta.get('pb_model_sha256'))[:12]} (now {want['pb_model']!r}, "
            f"{want['pb_model_sha256'][:12]}); run `partnerbot index` to embed the corpus with it"
        )
    diffs = [f"{k[3:]}={meta.get(k)!r} (now {want[k]!r})" for k in EMBEDDING_KEYS if meta.get(k) != want[k]]
    if diffs:
        raise IndexMismatchError(
            f"index version {version} was built with other settings: {', '.join(diffs)}; "
            "run `partnerbot index --rebuild`"
        )
    if readable and meta.get("pb_layout") != LAYOUT:
        raise IndexMismatchError(
            f"index version {version} was written by another version of partnerbot (layout "
            f"{meta.get('pb_layout') or 'none'!r}, now {LAYOUT!r}); run `partnerbot index` to rewrite it "
            "(unchanged text is not re-embedded)"
        )
    if selector_id is not None and meta.get("pb_selector") != selector_id:
        raise IndexMismatchError(
            f"index version {version} records answer selector {meta.get('pb_selector') or 'none'!r}, but the "
            f"installed selector is {selector_id!r}; run `partnerbot index` to record it (no text is re-embedded), "
            "or `partnerbot tune` if the selector is out of date"
        )


def open_collections(client: Any, version: str) -> dict[str, Any]:
    """The three collections of a version.

    Raises:
        IndexNotBuiltError: a collection is missing.
        StoreError / StoreUnavailableError: the store failed, or cannot be reached.
    """
    with store.failures(f"opening index version {version}",
                        missing=f"index version {version} is incomplete or deleted; {store.RECOVER}"):
        return {kind: client.get_collection(store.collection_name(version, kind)) for kind in store.KINDS}


def bm25_dir(settings: Settings, version: str) -> Path:
    """Where a version's BM25 retriever is persisted (by `build`, on the machine that built it)."""
    return settings.data_dir / "bm25" / version
