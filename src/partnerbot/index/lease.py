"""The reindex lease: one `partnerbot index` at a time per vector store, across machines.

The lease lives in the store itself, so two maintainers who reindex one Chroma server from two
machines are kept apart. Each lease is a collection `partnerbot-lease-<generation>` whose metadata
names the holder (owner, host, pid) and an expiry. Creating a collection with a taken name fails
in Chroma, so taking generation N+1 is an atomic claim: of two runs that both saw generation N
free or stale, exactly one gets N+1. A release marks the lease released but keeps it, so
generations only grow. The holder renews the expiry from a background thread; a run that finds
the newest lease expired (its holder died) takes it over and says so.

Expiry times are the holder's wall clock (`time.time` unless a `clock` is given): the machines' clocks
must agree to well within the lease's life (NTP does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from partnerbot.errors import IndexLockedError, StoreUnavailableError
from partnerbot.index import store
from partnerbot.settings import Settings

# The wall clock, in Unix seconds, that expiry times are written and read with.
Clock = Callable[[], float]

PREFIX = "partnerbot-lease-"
_NAME_RE = re.compile(r"^partnerbot-lease-(\d{10})$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lease, and until when."""

    owner: str
    host: str
    pid: int
    token: str
    expires_at: float  # Unix time
    released: bool = False

    def live(self, now: float) -> bool:
        return not self.released and self.expires_at > now

    def describe(self) -> str:
        until = dt.datetime.fromtimestamp(self.expires_at, dt.UTC).isoformat(timespec="seconds")
        return f"{self.owner}@{self.host} (pid {self.pid}), lease until {until}"

    def metadata(self) -> dict[str, Any]:
        return {"owner": self.owner, "host": self.host, "pid": self.pid, "token": self.token,
                "expires_at": self.expires_at, "released": self.released}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any] | None) -> Holder:
        meta = meta or {}
        return cls(str(meta.get("owner", "?")), str(meta.get("host", "?")), int(meta.get("pid", 0) or 0),
                   str(meta.get("token", "")), float(meta.get("expires_at", 0) or 0), bool(meta.get("released", False)))


def _name(generation: int) -> str:
    return f"{PREFIX}{generation:010d}"


def _generations(client: Any) -> list[int]:
    out = []
    for col in client.list_collections():
        m = _NAME_RE.match(col if isinstance(col, str) else col.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def _holder(client: Any, generation: int) -> Holder | None:
    try:
        return Holder.from_metadata(client.get_collection(_name(generation)).metadata)
    except Exception as exc:
        if store.unreachable(exc):
            raise
        return None  # deleted meanwhile


def newest_holder(client: Any) -> Holder | None:
    """The holder of the store's newest lease (live, expired or released), or None if no run ever took one."""
    gens = _generations(client)
    return _holder(client, gens[-1]) if gens else None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return f"uid{os.getuid()}"


class Lease:
    """A held reindex lease. Use `hold`, which acquires, renews and releases it."""

    def __init__(self, client: Any, generation: int, holder: Holder, ttl: float, took_over: Holder | None,
                 clock: Clock = time.time):
        """`clock` gives the time that renewals push the expiry `ttl` seconds past."""
        self.client = client
        self.generation = generation
        self.holder = holder
        self.ttl = ttl
        self.took_over = took_over
        self.clock = clock
        self._lost: Exception | None = None
        self._lock = threading.Lock()

    def renew(self) -> None:
        """Push the expiry forward, or fail if another run has taken the lease over.

        Raises:
            IndexLockedError: a newer lease exists (this run was presumed dead).
        """
        with self._lock:
            if self._lost is not None:
                raise self._lost
            newest = _generations(self.client)
            if newest and newest[-1] > self.generation:
                other = _holder(self.client, newest[-1])
                self._lost = IndexLockedError(
                    f"this run's reindex lease was taken over by {other.describe() if other else 'another run'}; "
                    "nothing was switched - run `partnerbot index` again when it has finished")
                raise self._lost
            self.holder = Holder(self.holder.owner, self.holder.host, self.holder.pid, self.holder.token,
                                 self.clock() + self.ttl)
            self.client.get_collection(_name(self.generation)).modify(metadata=self.holder.metadata())

    def release(self) -> None:
        """Mark the lease released (kept, so the next run takes a higher generation)."""
        with self._lock:
            if self._lost is not None:
                return
            done = Holder(self.holder.owner, self.holder.host, self.holder.pid, self.holder.token, 0.0, True)
            with contextlib.suppress(Exception):
                self.client.get_collection(_name(self.generation)).modify(metadata=done.metadata())


def acquire(client: Any, ttl: float, attempts: int = 3, clock: Clock = time.time) -> Lease:
    """Take the store's reindex lease, live for `ttl` seconds by `clock` (which the lease then renews with).

    Raises:
        IndexLockedError: another run holds a live lease.
        StoreUnavailableError: the store cannot be reached.
    """
    me = Holder(_user(), socket.gethostname(), os.getpid(), uuid.uuid4().hex, 0.0)
    for _ in range(attempts):
        gens = _generations(client)
        newest = gens[-1] if gens else 0
        previous = _holder(client, newest) if newest else None
        if previous is not None and previous.live(clock()):
            raise IndexLockedError(f"another `partnerbot index` is running on this store: {previous.describe()}; "
                                   "wait for it to finish")
        mine = Holder(me.owner, me.host, me.pid, me.token, clock() + ttl)
        try:
            client.create_collection(_name(newest + 1), metadata=mine.metadata(), embedding_function=None)
        except Exception as exc:
            if store.unreachable(exc):
                raise StoreUnavailableError("the vector store is unreachable") from exc
            continue  # another run claimed that generation first: look again
        after = _generations(client)
        if not after or after[-1] != newest + 1:  # a run with a fresher view claimed a newer one: it wins
            with contextlib.suppress(Exception):
                client.delete_collection(_name(newest + 1))
            continue
        for old in after[:-1]:
            with contextlib.suppress(Exception):
                client.delete_collection(_name(old))
        stale = previous if previous is not None and not previous.released else None
        return Lease(client, newest + 1, mine, ttl, stale, clock)
    raise IndexLockedError("another `partnerbot index` keeps claiming this store's reindex lease; try again shortly")


@contextlib.contextmanager
def hold(settings: Settings, client: Any, notify: Callable[[str], None] | None = None,
         clock: Clock = time.time) -> Iterator[Lease]:
    """Hold the store's reindex lease for the block, renewing it every third of its life.

    Args:
        notify: told when a stale lease (a run that died) is taken over.
        clock: the wall clock that expiry times are written and compared with.

    Raises:
        IndexLockedError: another run holds the lease.
        StoreUnavailableError: the store cannot be reached.
    """
    ttl = settings.index.index_lease_seconds
    try:
        lease = acquire(client, ttl, clock=clock)
    except Exception as exc:
        if isinstance(exc, IndexLockedError) or not store.unreachable(exc):
            raise
        raise StoreUnavailableError(f"the vector store at {store.describe(settings)} is unreachable") from exc
    if lease.took_over is not None:
        (notify or log.warning)(f"took over a stale reindex lease from {lease.took_over.describe()}; "
                                "that run stopped without releasing it")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lease.renew()
            except IndexLockedError:
                return
            except Exception as exc:  # a brief store outage: try again at the next tick
                log.warning("could not renew the reindex lease: %s", exc)

    thread = threading.Thread(target=renew, name="partnerbot-lease", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        lease.release()
