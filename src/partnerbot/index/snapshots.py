"""`IndexSnapshots`: the loaded index version that follows the active pointer, for serving.

It reads the pointer at most once per `check_seconds` (by an injectable clock) and loads a new
`IndexSnapshot` when the pointer has moved. It only reads: building and switching versions is `build`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from partnerbot.artifact import read_selector_json
from partnerbot.errors import IndexNotBuiltError, StoreError, StoreUnavailableError
from partnerbot.index import store
from partnerbot.index.read import IndexSnapshot, load_snapshot
from partnerbot.settings import Settings

Clock = Callable[[], float]


class IndexSnapshots:
    """The index version questions are answered from, reloaded when the active pointer moves."""

    def __init__(self, settings: Settings, *, pinned: str | None = None, check_selector: bool = True,
                 check_seconds: float = 1.0, clock: Clock = time.monotonic):
        """`pinned` names one version to read instead of following the pointer (the reindex gate).

        `check_selector=False` skips the check that the version records the installed reader's id (the
        reindex gate and `partnerbot tune` read versions built with an earlier one). `clock` gives the time
        in seconds that `check_seconds` is measured with.
        """
        self.settings = settings
        self._pinned = pinned
        self._check_selector = check_selector
        self._interval = check_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._client: Any = None
        self._snapshot: IndexSnapshot | None = None
        self._checked = float("-inf")
        self._selector_id: str | None = None  # the installed reader's, read once

    def _expected_selector(self) -> str | None:
        """The reader id a version must record, or None when that is not checked.

        Raises:
            SelectorError: the installed reader's file is missing or altered (read again on the next call).
        """
        if not self._check_selector:
            return None
        if self._selector_id is None:
            self._selector_id = str(read_selector_json(self.settings.answering.selector_path)["id"])
        return self._selector_id

    def current(self) -> IndexSnapshot:
        """The version to answer from now.

        Raises:
            StoreError / StoreUnavailableError: the vector store failed, or cannot be reached (the next call
                connects again).
            IndexNotBuiltError / IndexMismatchError: no usable index.
            SelectorError: the installed reader's file is missing or altered.
        """
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - self._checked < self._interval:
            return snapshot
        selector_id = self._expected_selector()
        with self._lock:
            try:
                if self._client is None:
                    self._client = store.connect(self.settings)
                version = self._pinned or store.read_pointer(self._client).version
                if self._snapshot is None or self._snapshot.version != version:
                    with store.failures(f"loading index version {version}"):
                        self._snapshot = load_snapshot(self._client, self.settings, version, selector_id)
            except StoreError:
                self._client = None
                raise
            self._checked = self._clock()
            return self._snapshot

    def forget(self) -> None:
        """Drop the connection and the loaded version: the next `current()` connects and loads again."""
        with self._lock:
            self._client, self._snapshot, self._checked = None, None, float("-inf")

    @property
    def version(self) -> str:
        """The loaded version's id, or "" before the first load."""
        return self._snapshot.version if self._snapshot else ""

    def health(self) -> dict[str, Any]:
        """The active version and whether the vector store answers."""
        where = store.describe(self.settings)
        try:
            version = store.read_pointer(self._client or store.connect(self.settings)).version
            return {"ok": True, "store_reachable": True, "index_version": version, "store": where}
        except StoreUnavailableError:
            return {"ok": False, "store_reachable": False, "index_version": self.version, "store": where}
        except (IndexNotBuiltError, StoreError) as exc:  # the store answers, with no usable pointer or an error
            return {"ok": False, "store_reachable": True, "index_version": None, "error": str(exc)}
