"""How the server's front ends ask: the client's rate limit, `replies.ask`, and the metrics, in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from partnerbot.answering.assistant import Assistant
from partnerbot.answers import Answer
from partnerbot.serving import replies
from partnerbot.serving.limits import RateLimiter
from partnerbot.serving.replies import Result
from partnerbot.serving.telemetry import Metrics


class Asker:
    """Asks for a front end: charges the client's rate limit (where the handler charges it), asks, counts."""

    def __init__(self, assistant: Assistant, metrics: Metrics | None = None, limiter: RateLimiter | None = None):
        self.assistant = assistant
        self.metrics = metrics
        self.limiter = limiter

    def ask(self, endpoint: str, question: Any, history: Sequence[Any] | Any, client: str | None = None) -> Result:
        """The result for one question, counted under `endpoint`; `client` is charged when given."""
        t0 = time.perf_counter()
        wait = self.limiter.take(client) if self.limiter is not None and client is not None else 0.0
        result = replies.rate_limited(wait) if wait else replies.ask(self.assistant, question, history)
        self.count(endpoint, result, None if wait else time.perf_counter() - t0)
        return result

    def count(self, endpoint: str, result: Result, seconds: float | None = None) -> None:
        """Count one request (its time, and an answer's stages) in the metrics."""
        if self.metrics is not None:
            self.metrics.observe(endpoint, replies.metric(result), seconds, result if isinstance(result, Answer) else None)
