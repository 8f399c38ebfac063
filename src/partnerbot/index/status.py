"""`partnerbot status`: the active index version described, read-only."""

from __future__ import annotations

from partnerbot.corpus.parse import load_corpus
from partnerbot.errors import PartnerbotError
from partnerbot.index import store
from partnerbot.index.meta import open_collections
from partnerbot.settings import Settings
from partnerbot.types import IndexStatus


def status(settings: Settings) -> IndexStatus:
    """Describe the active version and list corpus documents changed since it was built.

    Raises:
        IndexNotBuiltError: no index yet.
        StoreError / StoreUnavailableError: the store failed, or cannot be reached.
    """
    client = store.connect(settings)
    pointer = store.read_pointer(client)
    cols = open_collections(client, pointer.version)
    meta = cols["chunks"].metadata or {}
    got = cols["docs"].get(include=["metadatas"])
    built = {i: m["content_hash"] for i, m in zip(got["ids"], got["metadatas"], strict=True)}
    stale: list[str] = []
    corpus_error = ""
    try:
        current = {d.id: d.content_hash for d in load_corpus(settings.corpus_dir)}
        stale = sorted({i for i in current if built.get(i) != current[i]} | (set(built) - set(current)))
    except PartnerbotError as exc:  # the index is still described; the corpus's first problem is named
        corpus_error = str(exc).splitlines()[0]
    return IndexStatus(
        version=pointer.version,
        built_at=str(meta.get("pb_built_at", "")),
        embed_model=str(meta.get("pb_model", "")),
        chunk_size=int(meta.get("pb_chunk_size", 0)),
        chunk_overlap=int(meta.get("pb_chunk_overlap", 0)),
        documents=len(built),
        chunks=int(cols["chunks"].count()),
        previous=pointer.previous,
        stale=tuple(stale),
        corpus_error=corpus_error,
        store=store.describe(settings),
    )
