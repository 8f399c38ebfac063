"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for reading each request, so slow clients are cut off.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`), but not one that sends
a request slowly: a client that sends half its headers, or a byte of its body now and then, holds a
connection for as long as it likes (a "slowloris"). Here a request must arrive whole, headers and body,
within `read_timeout` seconds of its first byte (or of the connection, for one that sends nothing), or the
connection is closed. Only reading is timed: a response may stream for as long as it needs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Their side is still sending the request: no headers yet (IDLE), or its body (SEND_BODY).
_READING = (h11.IDLE, h11.SEND_BODY)


class ReadDeadlineProtocol(H11Protocol):
    """`H11Protocol` that closes a connection whose request is not read `read_timeout` seconds after it began."""

    read_timeout: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is cut off too

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of a request start its clock
            self._arm()
        super().data_received(data)
        if self.conn.their_state not in _READING:  # the whole request is in (or the connection is over)
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state in _READING and not self.transport.is_closing():
            self.logger.info("closed a connection that did not send its request within %s s", self.read_timeout)
            self.transport.close()


def protocol(read_timeout: float) -> type[ReadDeadlineProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), reading each request within `read_timeout` s."""
    return type("ReadDeadlineProtocol", (ReadDeadlineProtocol,), {"read_timeout": read_timeout})
