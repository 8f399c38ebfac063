"""Hybrid retrieval: dense (llama-index over Chroma) and BM25, fused by reciprocal rank."""

from __future__ import annotations

import numpy as np

from .errors import StoreUnavailableError
from .store import is_connection_error
from .text import content_stems
from .types import Hit
from .version import Version

RRF_K = 60


def retrieve(state: Version, query: str, query_vec: np.ndarray, mode: str, k: int) -> list[Hit]:
    """The top `k` chunks for `query`, fused by reciprocal rank in hybrid mode.

    Raises:
        StoreUnavailableError: the vector store cannot be reached.
    """
    from llama_index.core.schema import QueryBundle

    dense: dict[str, tuple[int, float]] = {}
    lexical: dict[str, tuple[int, float]] = {}
    if mode in ("hybrid", "dense"):
        try:
            found = state.dense.retrieve(QueryBundle(query_str=query, embedding=query_vec.tolist()))
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            raise StoreUnavailableError("the vector store is unreachable") from exc
        dense = {n.node.node_id: (r, float(n.score or 0.0)) for r, n in enumerate(found)}
    if mode in ("hybrid", "bm25") and content_stems(query):
        found = state.bm25.retrieve(QueryBundle(query_str=query))
        lexical = {n.node.node_id: (r, float(n.score or 0.0)) for r, n in enumerate(found) if (n.score or 0) > 0}
    fused: dict[str, float] = {}
    for ranking in (dense, lexical):
        for cid, (rank, _) in ranking.items():
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    # Ties (e.g. rank 1 in one list only) go to the lexical match: names and acronyms are its strength.
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0] not in lexical))[:k]
    return [
        Hit(state.chunks[cid], score, dense.get(cid, (0, None))[1], lexical.get(cid, (0, None))[1])
        for cid, score in best
        if cid in state.chunks
    ]

