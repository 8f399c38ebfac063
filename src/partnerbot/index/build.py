"""Build a new version of the index and switch to it (`rollback` switches back; `status` describes one).

A build writes a new version (chunks, sentences, documents) beside the active one, reusing the vectors of
every unchanged chunk and sentence, and switches the active pointer only once the build has fully
succeeded. A crash at any point leaves the active version untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from partnerbot.artifact import read_selector_json
from partnerbot.corpus.chunk import document_chunks, document_sentences
from partnerbot.corpus.parse import load_corpus
from partnerbot.errors import IndexNotBuiltError, ModelChangedError, SelectorError
from partnerbot.index import lease, store
from partnerbot.index.embed import token_splitter
from partnerbot.index.meta import LAYOUT, bm25_dir, build_meta, check_meta, open_collections
from partnerbot.index.read import bm25_retriever
from partnerbot.settings import Settings
from partnerbot.types import Chunk, Document, Gate, IndexSummary, Sentence

BATCH = 1000
# A wide search and a single-threaded build keep HNSW's nearest neighbours exact and repeatable at this
# corpus's scale, so a rebuilt version retrieves what its predecessor did (the fitted selector relies on it).
HNSW = {"hnsw:space": "cosine", "hnsw:construction_ef": 200, "hnsw:search_ef": 200, "hnsw:M": 32,
        "hnsw:num_threads": 1}
EMBED_BATCH = 256
Progress = Callable[[str, int, int], None]  # (stage, advance, total)
Notify = Callable[[str], None]


def _chunk_node(doc: Document, chunk: Chunk, embedding: Sequence[float] | None) -> Any:
    from llama_index.core.schema import TextNode

    # llama-index writes its own "doc_id" key into stored metadata, so ours is "doc".
    meta = {"doc": doc.id, "title": doc.title, "url": doc.url, "date": doc.date, "section": chunk.section,
            "start": chunk.start, "end": chunk.end, "content_hash": hashlib.sha256(chunk.text.encode()).hexdigest()}
    hidden = ["doc", "url", "date", "start", "end", "content_hash"]
    return TextNode(
        id_=chunk.id,
        text=chunk.text,
        metadata=meta,
        excluded_embed_metadata_keys=hidden,
        excluded_llm_metadata_keys=[*hidden, "title", "section"],
        embedding=list(embedding) if embedding is not None else None,
    )


def _existing(collection: Any | None, ids: list[str]) -> dict[str, list[float]]:
    """Embeddings already stored for `ids` in the active version."""
    if collection is None or not ids:
        return {}
    found: dict[str, list[float]] = {}
    for i in range(0, len(ids), BATCH):
        got = collection.get(ids=ids[i : i + BATCH], include=["embeddings"])
        for rid, emb in zip(got["ids"], got["embeddings"], strict=True):
            found[rid] = emb
    return found


@dataclass(frozen=True)
class _Plan:
    docs: list[Document]
    active: store.Pointer | None
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]


def _plan(client: Any, settings: Settings, docs: list[Document], rebuild: bool) -> tuple[_Plan, dict[str, Any] | None]:
    active: store.Pointer | None = None
    cols = None
    old_hashes: dict[str, str] = {}
    if not rebuild:
        try:
            active = store.read_pointer(client)
            cols = open_collections(client, active.version)
        except IndexNotBuiltError:
            active, cols = None, None
        if cols is not None and active is not None:
            try:
                check_meta(cols["chunks"].metadata or {}, settings, active.version, readable=False)
            except ModelChangedError:  # a new (e.g. freshly tuned) model: nothing can be reused, embed it all
                return _Plan(docs, active, tuple(sorted(d.id for d in docs)), (), (), ()), None
            got = cols["docs"].get(include=["metadatas"])
            old_hashes = {i: m["content_hash"] for i, m in zip(got["ids"], got["metadatas"], strict=True)}
    new = {d.id: d.content_hash for d in docs}
    added = tuple(sorted(set(new) - set(old_hashes)))
    removed = tuple(sorted(set(old_hashes) - set(new)))
    changed = tuple(sorted(i for i in new if i in old_hashes and old_hashes[i] != new[i]))
    unchanged = tuple(sorted(i for i in new if old_hashes.get(i) == new[i]))
    return _Plan(docs, active, added, changed, removed, unchanged), cols


def _new_version(docs: list[Document], settings: Settings) -> str:
    digest = hashlib.sha256(json.dumps([[d.id, d.content_hash] for d in docs] + [settings.index.embedding().name, settings.index.chunk_size, settings.index.chunk_overlap]).encode())
    return dt.datetime.now(dt.UTC).strftime("v%Y%m%dT%H%M%S%f") + "-" + digest.hexdigest()[:6]


def build_index(
    settings: Settings,
    *,
    rebuild: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    gate: Gate | None = None,
    notify: Notify | None = None,
) -> IndexSummary:
    """Validate the corpus and build a new index version, reusing unchanged vectors.

    Args:
        rebuild: ignore the active version and embed everything.
        dry_run: report what would change, write nothing.
        progress: called as (stage, advance, total) while loading the model and embedding.
        gate: called with the new version before switching; a verdict that did not pass keeps the old one.
        notify: told when a stale reindex lease is taken over.

    Returns:
        What changed, how many chunks were embedded, and whether the pointer switched.

    Raises:
        CorpusErrors: a corpus file is invalid (nothing is written).
        IndexLockedError: another index run is in progress, on this machine or on another one
            sharing the store; or this run's lease was taken over (nothing is switched).
        IndexMismatchError: the active version was built with other settings.
    """
    started = time.perf_counter()
    docs = load_corpus(settings.corpus_dir)
    with store.index_lock(settings):
        client = store.connect(settings)
        # A dry run writes nothing, so it needs no lease.
        held = contextlib.nullcontext(None) if dry_run else lease.hold(settings, client, notify)
        with held as claim:
            return _build(settings, client, docs, started, claim, rebuild=rebuild, dry_run=dry_run,
                          progress=progress, gate=gate)


def _build(settings: Settings, client: Any, docs: list[Document], started: float, claim: lease.Lease | None, *,
           rebuild: bool, dry_run: bool, progress: Progress | None, gate: Gate | None) -> IndexSummary:
    """`build_index` once the local lock and the store's lease are held."""
    plan, cols = _plan(client, settings, docs, rebuild)
    if not dry_run:
        _cleanup(client, settings, plan.active)
    selector_id, selector_note = _selector_id(settings)
    recorded = (cols["chunks"].metadata or {}) if cols else {}
    nothing = (not (plan.added or plan.changed or plan.removed) and recorded.get("pb_selector") == selector_id
               and recorded.get("pb_layout") == LAYOUT)
    if nothing and plan.active is not None and not rebuild:
        return IndexSummary(plan.active.version, (), (), (), plan.unchanged, 0, _count(cols, "chunks"),
                            time.perf_counter() - started, dry_run, switched=False, note="index is up to date")

    split = token_splitter(settings)
    chunks = [(d, c) for d in docs for c in document_chunks(d, split)]
    sents = [s for d in docs for s in document_sentences(d)]
    old_chunks = _existing(cols["chunks"] if cols else None, [c.id for _, c in chunks])
    old_sents = _existing(cols["sents"] if cols else None, [s.id for s in sents])
    todo_chunks = [(d, c) for d, c in chunks if c.id not in old_chunks]
    todo_sents = [s for s in sents if s.id not in old_sents]
    if dry_run:
        return IndexSummary(None, plan.added, plan.changed, plan.removed, plan.unchanged, len(todo_chunks),
                            len(chunks), time.perf_counter() - started, True, switched=False)

    version = _new_version(docs, settings)
    nodes = [_chunk_node(d, c, old_chunks.get(c.id)) for d, c in chunks]
    _write_version(client, settings, version, docs, nodes, sents, old_sents, progress,
                   len(todo_chunks) + len(todo_sents), selector_id)
    persist_bm25(settings, version, nodes)
    verdict = gate(version) if gate is not None else None
    if verdict is not None and not verdict.passed:
        return IndexSummary(version, plan.added, plan.changed, plan.removed, plan.unchanged, len(todo_chunks),
                            len(chunks), time.perf_counter() - started, switched=False, gate=verdict)
    if claim is not None:
        claim.renew()  # still ours? A run that took the lease over may be building beside us.
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    store.write_pointer(client, store.Pointer(version, plan.active.version if plan.active else None, now))
    _cleanup(client, settings, store.read_pointer(client))
    return IndexSummary(version, plan.added, plan.changed, plan.removed, plan.unchanged, len(todo_chunks),
                        len(chunks), time.perf_counter() - started, note=selector_note, gate=verdict)


def _selector_id(settings: Settings) -> tuple[str, str]:
    """The installed selector's id to record with a version, or "" and a note saying what to run."""
    try:
        return str(read_selector_json(settings.answering.selector_path)["id"]), ""
    except SelectorError as exc:
        return "", f"no usable answer selector, so questions cannot be answered yet: {exc}; then run `partnerbot index`"


def _write_version(client: Any, settings: Settings, version: str, docs: list[Document], nodes: list[Any],
                   sents: list[Sentence], sent_vecs: dict[str, Any], progress: Progress | None, todo: int,
                   selector_id: str) -> None:
    """Create the version's collections and fill them batch by batch, embedding what is missing.

    The collections are visible while they fill; they become the index only when the pointer
    switches, and `_cleanup` drops them if the build dies first.
    """
    from llama_index.core.schema import MetadataMode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from partnerbot.corpus.chunk import sentence_context
    from partnerbot.index.embed import embed_model, embed_texts

    if progress and todo:  # the model loads once per process and takes seconds: name that step
        progress("loading the embedding model", 0, 0)
        embed_model(settings)
    report = (lambda k: progress("embedding", k, todo)) if progress else None
    titles = {d.id: d.title for d in docs}
    meta = build_meta(settings, selector_id) | {"pb_built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                      "pb_version": version, **HNSW}
    cols = {kind: client.create_collection(store.collection_name(version, kind), metadata=meta, embedding_function=None)
            for kind in store.KINDS}
    vector_store = ChromaVectorStore(chroma_collection=cols["chunks"])
    for i in range(0, len(nodes), EMBED_BATCH):
        part = nodes[i : i + EMBED_BATCH]
        missing = [n for n in part if n.embedding is None]
        if missing:
            vecs = embed_texts(settings, [n.get_content(metadata_mode=MetadataMode.EMBED) for n in missing], report)
            for node, vec in zip(missing, vecs, strict=True):
                node.embedding = vec.tolist()
        vector_store.add(part)
    for i in range(0, len(sents), EMBED_BATCH):
        part = sents[i : i + EMBED_BATCH]
        missing = [s for s in part if s.id not in sent_vecs]
        if missing:
            texts = [sentence_context(titles[s.doc_id], s.section, s.text) for s in missing]
            for sent, vec in zip(missing, embed_texts(settings, texts, report), strict=True):
                sent_vecs[sent.id] = vec
        cols["sents"].add(
            ids=[s.id for s in part],
            embeddings=np.asarray([sent_vecs[s.id] for s in part], dtype=np.float32),
            documents=[s.text for s in part],
            metadatas=[{"doc_id": s.doc_id, "section": s.section, "start": s.start, "end": s.end,
                        "pages": json.dumps([asdict(p) for p in s.pages])} for s in part],
        )
    for i in range(0, len(docs), BATCH):
        part_docs = docs[i : i + BATCH]
        cols["docs"].add(
            ids=[d.id for d in part_docs],
            embeddings=[[1.0] for _ in part_docs],
            documents=[d.text for d in part_docs],
            metadatas=[{"title": d.title, "url": d.url, "date": d.date, "component": d.component,
                        "summary": d.summary, "sources": json.dumps(list(d.sources)), "content_hash": d.content_hash}
                       for d in part_docs],
        )


def _cleanup(client: Any, settings: Settings, active: store.Pointer | None) -> None:
    """Drop partial or outdated versions: keep only the active one and its predecessor."""
    keep = {active.version, active.previous} if active else set()
    for version in store.versions_present(client) - keep:
        store.drop_version(client, version)
    root = settings.data_dir / "bm25"
    if root.is_dir():
        for path in root.iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


def _count(cols: dict[str, Any] | None, kind: str) -> int:
    return int(cols[kind].count()) if cols else 0


def persist_bm25(settings: Settings, version: str, nodes: list[Any]) -> None:
    """Build the BM25 retriever over `nodes` and write it beside the version, replacing it whole."""
    retriever = bm25_retriever(nodes)
    target = bm25_dir(settings, version)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    retriever.persist(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
