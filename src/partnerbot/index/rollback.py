"""`partnerbot index --rollback`: make the previous index version active again, under the build's lock and lease."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from partnerbot.errors import PartnerbotError
from partnerbot.index import lease, store
from partnerbot.index.meta import open_collections
from partnerbot.settings import Settings

Notify = Callable[[str], None]


def rollback(settings: Settings, notify: Notify | None = None) -> store.Pointer:
    """Make the previous version active again (the current one becomes 'previous').

    Raises:
        PartnerbotError: there is no previous version to return to.
        IndexLockedError: an index run holds the lock or the store's lease.
    """
    with store.index_lock(settings):
        client = store.connect(settings)
        with lease.hold(settings, client, notify):
            return _rollback(client)


def _rollback(client: Any) -> store.Pointer:
    pointer = store.read_pointer(client)
    if not pointer.previous:
        raise PartnerbotError("there is no previous index version to roll back to")
    open_collections(client, pointer.previous)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    new = store.Pointer(pointer.previous, pointer.version, now)
    store.write_pointer(client, new)
    return new
