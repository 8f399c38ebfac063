"""The `Retriever`: from a cleaned question (and earlier turns) to its retrieval query, embedding and chunks.

Retrieval is hybrid: dense (llama-index over Chroma) and BM25, fused by reciprocal rank.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from partnerbot.answering.conversation import names_no_topic, retrieval_query
from partnerbot.answering.reader.features import Query
from partnerbot.index import store
from partnerbot.index.embed import query_embedder
from partnerbot.index.read import IndexSnapshot
from partnerbot.settings import Settings
from partnerbot.text import content_stems
from partnerbot.types import Hit

RRF_K = 60


def hybrid_search(snapshot: IndexSnapshot, query: str, query_vec: np.ndarray, mode: str, k: int) -> list[Hit]:
    """The top `k` chunks for `query`, fused by reciprocal rank in hybrid mode.

    Raises:
        StoreError / StoreUnavailableError: the vector store failed, or cannot be reached.
    """
    from llama_index.core.schema import QueryBundle

    dense: dict[str, tuple[int, float]] = {}
    lexical: dict[str, tuple[int, float]] = {}
    if mode in ("hybrid", "dense"):
        with store.failures("searching the chunks"):
            found = snapshot.dense.retrieve(QueryBundle(query_str=query, embedding=query_vec.tolist()))
        dense = {n.node.node_id: (r, float(n.score or 0.0)) for r, n in enumerate(found)}
    if mode in ("hybrid", "bm25") and content_stems(query):
        found = snapshot.bm25.retrieve(QueryBundle(query_str=query))
        lexical = {n.node.node_id: (r, float(n.score or 0.0)) for r, n in enumerate(found) if (n.score or 0) > 0}
    fused: dict[str, float] = {}
    for ranking in (dense, lexical):
        for cid, (rank, _) in ranking.items():
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    # Ties (e.g. rank 1 in one list only) go to the lexical match: names and acronyms are its strength.
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0] not in lexical))[:k]
    return [
        Hit(snapshot.chunks[cid], score, dense.get(cid, (0, None))[1], lexical.get(cid, (0, None))[1])
        for cid, score in best
        if cid in snapshot.chunks
    ]


@dataclass(frozen=True)
class Retrieval:
    """What retrieval made of one question: the query it searched with and the chunks it found."""

    query: Query
    hits: list[Hit]
    embed_ms: float = 0.0


class Retriever:
    """Normalises a question against the snapshot's vocabulary, embeds its retrieval query and searches."""

    def __init__(self, settings: Settings, embedder: Callable[[str], np.ndarray] | None = None):
        """`embedder` embeds one retrieval query (default: one at a time; `serve` passes a batching one)."""
        self.mode = settings.retrieval.retriever
        self.top_k = settings.retrieval.top_k
        self._embed = embedder or query_embedder(settings, batching=False)

    def retrieve(self, snapshot: IndexSnapshot, question: str, history: Sequence[str] = ()) -> Retrieval:
        """The chunks for a cleaned `question`, a follow-up taking its topic from `history` (earlier questions).

        Raises:
            StoreError / StoreUnavailableError: the vector store failed, or cannot be reached.
        """
        normal = snapshot.normalizer
        q = normal(question)
        search = retrieval_query(q, [normal(t) for t in history])
        t0 = time.perf_counter()
        vector = self._embed(search)
        embed_ms = (time.perf_counter() - t0) * 1000
        hits = hybrid_search(snapshot, snapshot.expand(search), vector, self.mode, self.top_k)
        return Retrieval(Query(q, search, vector, topical=search != q or not names_no_topic(q)), hits, embed_ms)
