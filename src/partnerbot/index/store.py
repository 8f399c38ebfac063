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

from partnerbot.errors import (
    IndexLockedError,
    IndexNotBuiltError,
    PartnerbotError,
    PointerDamagedError,
    StoreError,
    StoreUnavailableError,
)
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
        IndexNotBuiltError: no index was ever built (the pointer's collection does not exist).
        PointerDamagedError: the pointer's record is missing or malformed.
        StoreError / StoreUnavailableError: the store failed, or cannot be reached.
    """
    with failures("reading the active-version pointer", missing="no index has been built yet: run `partnerbot index`"):
        col = client.get_collection(POINTER_COLLECTION)
        got = col.get(ids=[POINTER_ID], include=["metadatas"])
    if not got["ids"]:
        raise PointerDamagedError(f"the active-version pointer is missing; {RECOVER}")
    meta = got["metadatas"][0] or {}
    version = meta.get("version")
    if not isinstance(version, str) or not re.fullmatch(r"v[0-9T]+-[0-9a-f]{6}", version):
        raise PointerDamagedError(f"the active-version pointer is damaged ({version!r}); {RECOVER}")
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


def unreachable(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is a failure to reach the store, told by its type.

    Chroma's HTTP client raises httpx's transport errors (a refused connection, a timeout, a connection cut
    mid-reply) as they come; sockets raise `ConnectionError` and `TimeoutError`.
    """
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionError, TimeoutError, httpx.TransportError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def failures(doing: str, missing: str | None = None) -> Iterator[None]:
    """Turn what a store call raises into partnerbot's errors, by the exception's type.

    Args:
        doing: what the call was doing, for the message ("reading the active-version pointer").
        missing: the message of `IndexNotBuiltError` when Chroma says a collection does not exist; None
            treats that like any other error of the store.

    Raises:
        StoreUnavailableError: the store cannot be reached (`unreachable`).
        IndexNotBuiltError: a collection does not exist, when `missing` is given.
        StoreError: any other error of Chroma's own (`chromadb.errors.ChromaError`).
        Anything else unchanged: an error of partnerbot's own, or one no store raises (a bug to see).
    """
    from chromadb.errors import ChromaError, NotFoundError

    try:
        yield
    except PartnerbotError:
        raise
    except Exception as exc:
        if unreachable(exc):
            raise StoreUnavailableError(f"the vector store is unreachable ({doing})") from exc
        if missing is not None and isinstance(exc, NotFoundError):
            raise IndexNotBuiltError(missing) from exc
        if isinstance(exc, ChromaError):
            raise StoreError(f"the vector store failed while {doing}: {type(exc).__name__}: {exc}") from exc
        raise


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
