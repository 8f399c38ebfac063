"""The app as `build_app` assembles it, in-process, around a stand-in assistant (no model, no index): the order
of its middleware, the outage check on Gradio's `/ask`, and HEAD and OPTIONS on every route of the API."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import FakeClock
from partnerbot.errors import StoreUnavailableError
from partnerbot.serving.server import StoreCheck, build_app
from partnerbot.settings import Settings


class StandIn:
    """An assistant whose store is up or down, counting how often its health is asked; it answers nothing."""

    def __init__(self, settings: Settings, reachable: bool = True):
        self.settings = settings
        self.version = "v1"
        self.reachable = reachable
        self.health_calls = 0

    def health(self) -> dict[str, Any]:
        self.health_calls += 1
        return {"ok": self.reachable, "store_reachable": self.reachable, "index_version": self.version, "store": "-"}

    def ask(self, question: str, history: Sequence[str] = ()) -> Any:
        raise StoreUnavailableError("the vector store is unreachable")

    def document(self, doc_id: str) -> None:
        return None


def _client(reachable: bool = True) -> tuple[TestClient, StandIn]:
    settings = Settings(rate_limit=0)
    assistant = StandIn(settings, reachable)
    return TestClient(build_app(settings, assistant)), assistant  # type: ignore[arg-type]


def test_every_refusal_leaves_its_line_in_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    """The upload refusal and Gradio's outage 503 run inside the access log, as every other reply does."""
    client, _ = _client(reachable=False)
    with client, caplog.at_level(logging.INFO, logger="partnerbot.access"):
        assert client.post("/gradio_api/upload", content=b"x").status_code == 404
        down = client.post("/gradio_api/call/ask", json={"data": ["What is BEST?", []]})
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "partnerbot.access"]
    assert [(line["path"], line["status"]) for line in lines] == [("/gradio_api/upload", 404),
                                                                   ("/gradio_api/call/ask", 503)]


def test_the_outage_check_asks_the_store_at_most_once_a_second() -> None:
    client, assistant = _client(reachable=True)
    with client:
        for _ in range(20):
            assert client.post("/gradio_api/call/ask", json={"data": ["What is BEST?", []]}).status_code == 200
    assert assistant.health_calls == 1  # twenty calls within a second: the store was asked once

    clock = FakeClock()
    health = StandIn(Settings())
    check = StoreCheck(health.health, seconds=1.0, clock=clock)
    assert check.reachable() and check.reachable() and health.health_calls == 1
    health.reachable = False
    clock.advance(0.9)
    assert check.reachable() and health.health_calls == 1  # still the answer of 0.9 s ago
    clock.advance(0.1)
    assert not check.reachable() and health.health_calls == 2


def test_head_and_options_follow_the_api_s_error_contract() -> None:
    client, _ = _client()
    with client:
        assert client.head("/healthz").status_code == 200  # uptime monitors probe with HEAD
        assert client.head("/v1/models").status_code == 200 and client.head("/metrics").status_code == 200
        for method in ("OPTIONS", "HEAD", "PUT", "GET"):
            r = client.request(method, "/api/ask")
            assert r.status_code == 405 and r.headers["allow"] == "POST", (method, r.text)
            assert r.headers["content-type"] == "application/json"
            if method != "HEAD":  # a reply to HEAD has no body
                assert r.json()["error"]["code"] == "method_not_allowed"
        r = client.options("/v1/chat/completions")
        assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
        r = client.options("/api/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert client.head("/v1/nothing-here").status_code == 404
