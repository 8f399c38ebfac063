"""What the server tells its operators: Prometheus metrics and a JSON access log, one line per request.

The access log never holds a client address, and holds question text only when `log_questions` is on.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from partnerbot.answers import Answer

# Requests by what became of them (`replies.metric` gives each result its label).
OUTCOMES = ("answered", "uncertain", "refused", "invalid", "unavailable", "rate_limited", "error")
STAGES = ("embed", "retrieve", "compose")
# Endpoints by path, for the request counter; anything else is not counted as a request for an answer.
ENDPOINTS = {"/api/ask": "api_ask", "/v1/chat/completions": "chat_completions", "/v1/models": "models",
             "/metrics": "metrics"}
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
access_log = logging.getLogger("partnerbot.access")
disable_created_metrics()  # `*_created` series double the exposition and say only when the server started


def endpoint_of(path: str) -> str:
    return ENDPOINTS.get(path.rstrip("/"), "models" if path.startswith("/v1/models/") else "other")


class _IndexVersion(Collector):
    def __init__(self, version: Callable[[], str]):
        self._version = version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("partnerbot_index_version", "The index version answers come from (value 1).",
                                   labels=["version"])
        family.add_metric([self._version() or "none"], 1.0)
        yield family


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self, version: Callable[[], str]):
        self.registry = CollectorRegistry()
        self.requests = Counter("partnerbot_requests", "Requests by endpoint and outcome.", ["endpoint", "outcome"],
                                registry=self.registry)
        self.latency = Histogram("partnerbot_request_seconds", "Time to answer a request, by endpoint (total).",
                                 ["endpoint"], buckets=BUCKETS, registry=self.registry)
        self.stages = Histogram("partnerbot_stage_seconds", "Time in each stage of answering a question.",
                                ["stage"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_IndexVersion(version))
        for endpoint in ("api_ask", "chat_completions", "models", "gradio_ask", "chat_page"):
            for outcome in OUTCOMES:  # every series exists from the start, at 0
                self.requests.labels(endpoint, outcome)

    def observe(self, endpoint: str, outcome: str, seconds: float | None = None, answer: Answer | None = None) -> None:
        """Count one request; time it and, for an answer, its stages."""
        self.requests.labels(endpoint, outcome).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)
        if answer is not None:
            for stage in STAGES:
                if stage in answer.timings_ms:
                    self.stages.labels(stage).observe(answer.timings_ms[stage] / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class AccessLogMiddleware:
    """Writes one JSON line per HTTP request to the `partnerbot.access` logger.

    A route may add fields through `scope["state"]["log"]` (outcome, index version, and the question when
    `log_questions` is on); the client's address and the query string are never written.
    """

    def __init__(self, app: Any, log_questions: bool = False):
        self.app = app
        self.log_questions = log_questions

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0
        extra: dict[str, Any] = {}
        scope.setdefault("state", {})["log"] = extra

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if not self.log_questions:
                extra.pop("question", None)
            line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "method": scope.get("method"),
                    "path": scope.get("path"), "status": status or 500,
                    "duration_ms": round((time.perf_counter() - t0) * 1000, 2), **extra}
            access_log.info(json.dumps(line, ensure_ascii=False))


def configure_access_log() -> None:
    """Send access-log lines, bare, to standard error."""
    if access_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
