"""Read one index version for serving: an `IndexSnapshot` of its documents, chunks, sentence vectors and
retrievers.

This is the read path. It never writes to the store or the disk and never imports `build`, so a serving
replica runs without the build code (an import-linter contract checks it).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from partnerbot.corpus.vocabulary import Normalizer, find_acronyms
from partnerbot.index.meta import bm25_dir, check_meta, open_collections
from partnerbot.settings import Settings
from partnerbot.text import content_stems, date_words
from partnerbot.types import Chunk, Page, Sentence

os.environ.setdefault("TQDM_DISABLE", "1")
# How many chunks each retriever (dense, BM25) returns before fusion.
PER_RETRIEVER_TOP_K = 20


def bm25_retriever(nodes: list[Any]) -> Any:
    """llama-index's BM25 retriever over `nodes`, in memory (`build.persist_bm25` writes it with a version)."""
    import Stemmer
    from llama_index.retrievers.bm25 import BM25Retriever

    return BM25Retriever.from_defaults(
        nodes=nodes, similarity_top_k=min(50, len(nodes)), stemmer=Stemmer.Stemmer("english"), language="english"
    )


@dataclass(frozen=True)
class DocInfo:
    """A document as stored with a version."""

    id: str
    title: str
    url: str
    date: str
    component: str
    summary: str
    text: str


@dataclass
class IndexSnapshot:
    """One index version loaded for querying: what the active pointer named when it was read."""

    version: str
    docs: dict[str, DocInfo]
    chunks: dict[str, Chunk]
    sentences: list[Sentence]
    sentence_vecs: np.ndarray
    sentence_stems: list[frozenset[str]]
    idf: dict[str, float]
    max_idf: float
    dense: Any
    bm25: Any

    def sentences_in(self, chunk: Chunk) -> list[int]:
        """Indices of the sentences that start inside `chunk`."""
        idx = self._by_doc.get(chunk.doc_id, [])
        return [i for i in idx if chunk.start <= self.sentences[i].start < chunk.end]

    def __post_init__(self) -> None:
        self._by_doc: dict[str, list[int]] = {}
        for i, s in enumerate(self.sentences):
            self._by_doc.setdefault(s.doc_id, []).append(i)
        # Each document's opening sentence: its plain definition ("The 287(g) program lets ...").
        self.lead_of = {doc: idx[0] for doc, idx in self._by_doc.items()}
        self.leads = set(self.lead_of.values())
        self.acronyms = find_acronyms(d.text for d in self.docs.values())
        self.lower_words = {w for d in self.docs.values() for w in re.findall(r"\b[a-z][a-z0-9]+\b", d.text)}
        self.normalizer = Normalizer([d.text for d in self.docs.values()] + [d.title for d in self.docs.values()])

    def acronyms_in(self, query: str) -> list[str]:
        """The corpus acronyms named in `query` ("BEST", "c3").

        A lower-case word counts as an acronym only if the corpus never uses it as an ordinary word.
        """
        found = []
        for word in re.findall(r"[A-Za-z][A-Za-z0-9]+", query):
            key = word.upper()
            if key in self.acronyms and (word.isupper() or word.lower() not in self.lower_words) and key not in found:
                found.append(key)
        return found

    def expand(self, query: str) -> str:
        """Append the spelled-out name of each acronym in `query` ("BEST" -> "Border Enforcement ...")."""
        extra = [self.acronyms[k] for k in self.acronyms_in(query) if self.acronyms[k].lower() not in query.lower()]
        return f"{query} ({'; '.join(extra)})" if extra else query


def _get_all(collection: Any, include: list[str]) -> dict[str, list[Any]]:
    total = collection.count()
    out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
    for offset in range(0, total, 5000):
        got = collection.get(include=include, limit=5000, offset=offset)
        out["ids"].extend(got["ids"])
        for k in include:
            out[k].extend(got[k])
    return out


def load_snapshot(client: Any, settings: Settings, version: str, selector_id: str | None = None) -> IndexSnapshot:
    """Read a version's documents, chunks and sentence vectors, and open its retrievers.

    Raises:
        IndexNotBuiltError: the version's collections are missing.
        IndexMismatchError: it was built with other settings.
    """
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from partnerbot.index.embed import embed_model

    cols = open_collections(client, version)
    check_meta(cols["chunks"].metadata or {}, settings, version, selector_id)
    got = _get_all(cols["docs"], ["documents", "metadatas"])
    docs = {
        i: DocInfo(i, m["title"], m["url"], m["date"], m["component"], m["summary"], text)
        for i, text, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
    }
    got = _get_all(cols["chunks"], ["metadatas"])
    chunks = {}
    for cid, m in zip(got["ids"], got["metadatas"], strict=True):
        text = docs[m["doc"]].text[m["start"] : m["end"]]
        chunks[cid] = Chunk(cid, m["doc"], m["section"], text, int(m["start"]), int(m["end"]))
    got = _get_all(cols["sents"], ["metadatas", "embeddings"])
    order = sorted(range(len(got["ids"])), key=lambda i: (got["metadatas"][i]["doc_id"], got["metadatas"][i]["start"]))
    sentences = []
    for i in order:
        m = got["metadatas"][i]
        text = docs[m["doc_id"]].text[m["start"] : m["end"]]
        pages = tuple(Page(**p) for p in json.loads(m["pages"]))
        sentences.append(Sentence(got["ids"][i], m["doc_id"], m["section"], text, int(m["start"]), int(m["end"]), pages))
    vecs = np.asarray([got["embeddings"][i] for i in order], dtype=np.float32).reshape(len(order), -1)
    # A sentence is "as of" its document's date: a question naming that date matches it too.
    dated = {i: date_words(d.date) for i, d in docs.items()}
    stems = [frozenset(content_stems(f"{s.text} {dated[s.doc_id]}")) for s in sentences]
    df = Counter(st for ss in stems for st in ss)
    n = max(len(sentences), 1)
    idf = {st: math.log((n + 1) / (c + 1)) + 1.0 for st, c in df.items()}
    path = bm25_dir(settings, version)
    if (path / "retriever.json").exists():
        bm25 = BM25Retriever.from_persist_dir(str(path))
    else:  # built on another machine (Chroma server mode): built in memory from the stored chunks
        nodes = [TextNode(id_=c.id, text=c.text, metadata={"title": docs[c.doc_id].title, "section": c.section})
                 for c in chunks.values()]
        bm25 = bm25_retriever(nodes)
    bm25.similarity_top_k = min(PER_RETRIEVER_TOP_K, len(chunks))
    index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=cols["chunks"]),
                                               embed_model=embed_model(settings))
    dense = index.as_retriever(similarity_top_k=min(PER_RETRIEVER_TOP_K, len(chunks)))
    return IndexSnapshot(version, docs, chunks, sentences, vecs, stems, idf, math.log(n + 1) + 1.0, dense, bm25)


