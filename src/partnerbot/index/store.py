"""Chroma access: the client (embedded or server), versioned collections and the active pointer.

A version is three collections, `pb-<version>-chunks`, `-sents` and `-docs`. The active pointer
is one record in the `partnerbot-active` collection, so every process that shares the Chroma
store, embedded or server, sees the same active version.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import filelock

from partnerbot.errors import IndexLockedError, IndexNotBuiltError, StoreUnavailableError
from partnerbot.settings import Settings

POINTER_COLLECTION = "partnerbot-active"
POINTER_ID = "active"
PREFIX = "pb-"
KINDS = ("chunks", "sents", "docs")
_VERSION_RE = re.compile(r"^pb-(v[0-9T]+-[0-9a-f]{6})-(chunks|sents|docs)$")
RECOVER = "run `partnerbot index --rebuild` to build a fresh index"


@dataclass(frozen=True)
class Pointer:
    """The active version and the one before it (for `--rollback`)."""

    version: str
    previous: str | None
    switched_at: str


def connect(settings: Settings) -> Any:
    """A Chroma client: `HttpClient` when `chroma_url` is set, else `PersistentClient`.

    Raises:
        StoreUnavailableError: the Chroma server cannot be reached.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.index.chroma_url:
        url = urlparse(settings.index.chroma_url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreUnavailableError(f"the Chroma server at {settings.index.chroma_url} is unreachable") from exc
        return client
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def describe(settings: Settings) -> str:
    return settings.index.chroma_url or f"embedded ({settings.data_dir / 'chroma'})"


def collection_name(version: str, kind: str) -> str:
    return f"{PREFIX}{version}-{kind}"


def versions_present(client: Any) -> set[str]:
    """Every version that has at least one collection in the store."""
    out = set()
    for col in client.list_collections():
        name = col if isinstance(col, str) else col.name
        m = _VERSION_RE.match(name)
        if m:
            out.add(m.group(1))
    return out


def read_pointer(client: Any) -> Pointer:
    """The active pointer.

    Raises:
        IndexNotBuiltError: no pointer, or a damaged one.
    """
    try:
        col = client.get_collection(POINTER_COLLECTION)
        got = col.get(ids=[POINTER_ID], include=["metadatas"])
    except Exception as exc:
        if is_connection_error(exc):
            raise StoreUnavailableError("the vector store is unreachable") from exc
        raise IndexNotBuiltError("no index has been built yet: run `partnerbot index`") from exc
    if not got["ids"]:
        raise IndexNotBuiltError(f"the active-version pointer is missing; {RECOVER}")
    meta = got["metadatas"][0] or {}
    version = meta.get("version")
    if not isinstance(version, str) or not re.fullmatch(r"v[0-9T]+-[0-9a-f]{6}", version):
        raise IndexNotBuiltError(f"the active-version pointer is damaged ({version!r}); {RECOVER}")
    previous = meta.get("previous") or None
    return Pointer(version, previous if isinstance(previous, str) else None, str(meta.get("switched_at", "")))


def write_pointer(client: Any, pointer: Pointer) -> None:
    """Switch the active version: one upsert, atomic in Chroma."""
    col = client.get_or_create_collection(POINTER_COLLECTION, embedding_function=None)
    col.upsert(
        ids=[POINTER_ID],
        embeddings=[[1.0]],
        documents=[pointer.version],
        metadatas=[{"version": pointer.version, "previous": pointer.previous or "", "switched_at": pointer.switched_at}],
    )


def drop_version(client: Any, version: str) -> None:
    for kind in KINDS:
        with contextlib.suppress(Exception):
            client.delete_collection(collection_name(version, kind))


def is_connection_error(exc: BaseException) -> bool:
    """Does this exception (or one it was raised from) say the store cannot be reached?"""
    while exc is not None:
        if isinstance(exc, (ConnectionError, TimeoutError)) or _connection_words(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _connection_words(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("connect", "connection", "timed out", "timeout", "unreachable", "refused"))


@contextlib.contextmanager
def index_lock(settings: Settings) -> Iterator[None]:
    """Hold the data directory's index lock, or fail at once if another run holds it.

    This keeps runs on one machine apart (they share BM25 files); `lease.hold` keeps runs on
    different machines apart when they share a Chroma server.

    Raises:
        IndexLockedError: another `partnerbot index` is running with this data directory.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "index.lock"

    def mark(fd: int) -> None:  # the holder's pid, for the message a second run prints
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)

    lock = filelock.FileLock(path, timeout=0, on_acquired=mark)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            holder = path.read_text(errors="replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise IndexLockedError(
            f"another `partnerbot index` is running (pid {holder}; lock {path}); wait for it to finish"
        ) from None
    try:
        yield
    finally:
        lock.release()
