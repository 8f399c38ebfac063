"""Per-client rate limits: a token bucket for each client address, and the ASGI middleware that applies them.

No maintained library fits: `limits` offers fixed and sliding windows, not a bucket with a burst, and
`aiolimiter` is one shared leaky bucket with no per-client keys or retry time. The bucket is a few lines,
tested with a controlled clock in tests/test_limits.py.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from partnerbot.serving import replies

# Gradio's page assets, the streams that follow a question it has already accepted (the chat page and
# Gradio's `/ask` charge each question inside the handler, so the page can say so politely), and the documents
# an answer's cards open.
FREE_PREFIXES = ("/healthz", "/assets/", "/static/", "/documents/", "/gradio_api/queue/", "/gradio_api/heartbeat/",
                 "/gradio_api/call/", "/favicon", "/theme.css", "/manifest.json", "/custom_component/",
                 "/gradio_api/file", "/gradio_api/upload_progress", "/gradio_api/startup-events")


class RateLimiter:
    """Token buckets keyed by client: `rate` tokens a second, holding at most `burst`; `rate` 0 = no limit.

    At most `max_clients` buckets are kept, in the order their clients last asked (an `OrderedDict`): a new
    client past the cap pushes out the one that has been quiet longest, whose next request starts from a full
    bucket. Memory stays bounded, and each request costs the same whatever the number of clients.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 100_000):
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when counted)
        self._lock = threading.Lock()

    @property
    def clients(self) -> frozenset[str]:
        """The clients whose buckets are kept (a client with none is treated as having a full one)."""
        with self._lock:
            return frozenset(self._buckets)

    def take(self, client: str) -> float:
        """Spend one of `client`'s tokens; 0.0 if it had one, else the seconds until it will."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            spent = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if spent else tokens, now)  # now the most recent
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)  # the client quiet the longest
            return 0.0 if spent else (1.0 - tokens) / self.rate


def client_key(scope: dict[str, Any]) -> str:
    """The client's address as the server sees it (after a trusted proxy's forwarding header)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answers 429 with `Retry-After` when a client's bucket is empty; Gradio's own routes are charged in the handler."""

    def __init__(self, app: Any, limiter: RateLimiter, on_limited: Callable[[str], None] | None = None):
        self.app = app
        self.limiter = limiter
        self.on_limited = on_limited

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(FREE_PREFIXES):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.take(client_key(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        if self.on_limited:
            self.on_limited(path)
        problem = replies.rate_limited(wait)
        data = json.dumps(replies.openai_error(problem)[1] if path.startswith("/v1/") else replies.body(problem)).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", str(max(1, math.ceil(wait))).encode()),
            (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
