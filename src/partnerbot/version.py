"""Read one index version for serving: its documents, chunks, sentence vectors and retrievers.

This is the read path. It depends on `store` and the shared types only; building versions
(`index.py`) imports from here, never the reverse, so a serving replica runs without the build code.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .errors import IndexMismatchError, IndexNotBuiltError, ModelChangedError
from .normalize import Normalizer
from .settings import Settings
from .text import content_stems
from .types import Chunk, Page, Sentence

os.environ.setdefault("TQDM_DISABLE", "1")
CANDIDATES = 20
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
        "pb_model": settings.model_name,
        "pb_model_sha256": settings.model_sha256,
        "pb_chunk_size": settings.chunk_size,
        "pb_chunk_overlap": settings.chunk_overlap,
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
    """
    try:
        return {kind: client.get_collection(store.collection_name(version, kind)) for kind in store.KINDS}
    except Exception as exc:
        if store.is_connection_error(exc):
            raise store.StoreUnavailableError("the vector store is unreachable") from exc
        raise IndexNotBuiltError(f"index version {version} is incomplete or deleted; {store.RECOVER}") from exc


def bm25_dir(settings: Settings, version: str) -> Path:
    return settings.data_dir / "bm25" / version


def build_bm25(settings: Settings, version: str, nodes: list[Any]) -> Any:
    """Build llama-index's BM25 retriever over `nodes` and persist it with the version.

    Serving calls it too: a replica that shares a Chroma server rebuilds its local BM25 once.
    """
    import Stemmer
    from llama_index.retrievers.bm25 import BM25Retriever

    retriever = BM25Retriever.from_defaults(
        nodes=nodes, similarity_top_k=min(50, len(nodes)), stemmer=Stemmer.Stemmer("english"), language="english"
    )
    target = bm25_dir(settings, version)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    retriever.persist(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return retriever


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
class Version:
    """One index version loaded for querying."""

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


def find_acronyms(texts: Any) -> dict[str, str]:
    """Acronyms defined in the corpus as "Full Name (ACR)", where the initials match."""
    small = ("and", "of", "the", "for", "on", "to")
    found: dict[str, str] = {}
    pattern = r"((?:[A-Z][\w'-]*[ ,]+(?:(?:and|of|the|for|on|to)\s+)*){1,9})\(([A-Z][A-Za-z0-9]{1,7})\)"
    for text in texts:
        for m in re.finditer(pattern, text):
            words = m.group(1).replace(",", " ").split()
            acr = m.group(2)
            # A digit repeats the letter before it: "C3" is the initials C, C, C.
            letters = re.sub(r"([A-Z])(\d)", lambda d: d.group(1) * int(d.group(2)), acr)
            letters = "".join(c for c in letters if c.isupper())
            key = acr[:-1].upper() if acr.endswith("s") and acr[:-1].isupper() else acr.upper()
            for start in range(len(words)):
                cand = [w for w in words[start:] if w.lower() not in small]
                initials = "".join(w[0] for w in cand).upper()
                if initials == letters or (len(letters) >= 3 and initials.startswith(letters)):
                    name = words[start:]
                    while name and name[0].lower() in small:
                        name = name[1:]
                    found.setdefault(key, " ".join(name))
                    break
    return found


def date_words(iso: str) -> str:
    """An ISO date in words: "2020-07-30" -> "July 30 2020"."""
    import datetime as dt

    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return ""
    return f"{day:%B} {day.day} {day.year}"


def _get_all(collection: Any, include: list[str]) -> dict[str, list[Any]]:
    total = collection.count()
    out: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
    for offset in range(0, total, 5000):
        got = collection.get(include=include, limit=5000, offset=offset)
        out["ids"].extend(got["ids"])
        for k in include:
            out[k].extend(got[k])
    return out


def load_version(client: Any, settings: Settings, version: str, selector_id: str | None = None) -> Version:
    """Read a version's documents, chunks and sentence vectors, and open its retrievers.

    Raises:
        IndexNotBuiltError: the version's collections are missing.
        IndexMismatchError: it was built with other settings.
    """
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from .embed import embed_model

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
    else:  # built on another machine (Chroma server mode): rebuild once from the stored chunks
        nodes = [TextNode(id_=c.id, text=c.text, metadata={"title": docs[c.doc_id].title, "section": c.section})
                 for c in chunks.values()]
        bm25 = build_bm25(settings, version, nodes)
    bm25.similarity_top_k = min(CANDIDATES, len(chunks))
    index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=cols["chunks"]),
                                               embed_model=embed_model(settings))
    dense = index.as_retriever(similarity_top_k=min(CANDIDATES, len(chunks)))
    return Version(version, docs, chunks, sentences, vecs, stems, idf, math.log(n + 1) + 1.0, dense, bm25)


