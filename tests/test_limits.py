"""The token bucket and its middleware (with a controlled clock), and the question batcher (with the real model)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import FakeClock
from partnerbot.index.embed import QueryBatcher, embed_queries, embed_query
from partnerbot.serving.limits import RateLimiter, RateLimitMiddleware
from partnerbot.serving.replies import rate_limited
from partnerbot.settings import Settings


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)  # one token comes back every 1/rate seconds
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.25
    assert limiter.take("a") == pytest.approx(0.25)  # half a token: still refused, the wait shrinks
    clock.now += 0.25
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 100  # a long pause refills to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)].count(0.0) == 3


def test_rate_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.take("a") == 0.0 for _ in range(1000))


def test_the_buckets_kept_never_pass_the_client_cap() -> None:
    """However many clients ask, and however spent their buckets, at most `max_clients` are kept: the quietest go."""
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock, max_clients=10)
    for i in range(1000):  # a thousand addresses, each spending a token and none refilling
        limiter.take(f"c{i}")
        assert len(limiter.clients) <= 10
    assert limiter.clients == {f"c{i}" for i in range(990, 1000)}  # the ten most recent
    limiter.take("c990")  # asking again makes c990 the most recent: c991 is now the quietest
    limiter.take("new")
    assert "c990" in limiter.clients and "c991" not in limiter.clients and len(limiter.clients) == 10
    assert limiter.take("c0") == 0.0  # a client pushed out starts again from a full bucket


def test_the_middleware_refuses_a_client_until_its_bucket_refills() -> None:
    """The middleware's 429 names the wait, and the client is served again exactly when the wait is over."""
    clock = FakeClock()
    limited: list[str] = []

    async def answer(request: object) -> PlainTextResponse:
        return PlainTextResponse("answered")

    app = RateLimitMiddleware(Starlette(routes=[Route("/api/ask", answer, methods=["POST"])]),
                              RateLimiter(rate=0.25, burst=2, clock=clock), on_limited=limited.append)
    client, other = (TestClient(app, client=(f"10.12.0.{n}", 50000)) for n in (50, 51))
    assert [client.post("/api/ask").status_code for _ in range(2)] == [200, 200]
    refused = client.post("/api/ask")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "4"  # one token every 4 s
    assert refused.json()["rate_limited"] is True and "Please wait 4 seconds" in refused.json()["error"]["message"]
    assert other.post("/api/ask").text == "answered"  # another client has its own bucket
    clock.advance(3.75)
    assert client.post("/api/ask").headers["retry-after"] == "1"  # asking again does not delay the refill
    clock.advance(0.25)
    assert client.post("/api/ask").text == "answered"
    assert limited == ["/api/ask", "/api/ask"]


def test_limited_message_is_polite_and_says_how_long() -> None:
    assert "Please wait 3 seconds" in rate_limited(2.2).message
    assert "Please wait 1 second and" in rate_limited(0.1).message


def test_batched_embeddings_match_single_ones_and_form_batches(model: object) -> None:
    settings = Settings()
    texts = [f"What does program {i} of the ICE partnerships do?" for i in range(24)] + ["What is HERO Corps?"]
    batcher = QueryBatcher(lambda batch: embed_queries(settings, batch), max_batch=8, wait_ms=20)
    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        vectors = list(pool.map(batcher.embed, texts))
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, embed_query(settings, text), atol=1e-5), text
    assert max(batcher.batch_sizes) > 1 and max(batcher.batch_sizes) <= 8
    assert sum(k * v for k, v in batcher.batch_sizes.items()) == len(texts)


def test_a_failed_batch_reaches_every_caller() -> None:
    def broken(batch: list[str]) -> np.ndarray:
        raise RuntimeError(f"encoder failed on {len(batch)}")

    batcher = QueryBatcher(broken, max_batch=4, wait_ms=1)
    with pytest.raises(RuntimeError, match="encoder failed"):
        batcher.embed("What is BEST?")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.embed, "q") for _ in range(3)]
    assert all(isinstance(f.exception(), RuntimeError) for f in futures)


class Boom(BaseException):
    """Raised by a faulty encoder: not an `Exception`, so nothing catches it by accident."""


def _embed_all(batcher: QueryBatcher, texts: list[str], within: float = 10.0) -> list[object]:
    """Each text's vector or error, asked at once from several threads; the test fails, never hangs, past `within`.

    Daemon threads: a caller left waiting by a dead batcher must not keep the test run from ending either."""
    results: dict[int, object] = {}

    def call(i: int, text: str) -> None:
        try:
            results[i] = batcher.embed(text)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i, t), daemon=True) for i, t in enumerate(texts)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + within
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert len(results) == len(texts), "a caller is still waiting: the batcher stopped answering"
    return [results[i] for i in range(len(texts))]


@pytest.mark.parametrize("fault", ["too few vectors", "not an Exception", "an error on its own too"])
def test_the_batcher_survives_any_fault_and_no_caller_waits_forever(fault: str) -> None:
    calls: list[int] = []

    def faulty(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:  # the first batch only
            if fault == "too few vectors":
                return np.ones((len(batch) - 1, 3), dtype=np.float32)  # once made zip(strict=True) kill the worker
            if fault == "not an Exception":
                raise Boom("the encoder blew up")
        if fault == "an error on its own too" and len(calls) <= 2:  # the batch, then its first question alone
            raise RuntimeError("the batch failed") if len(calls) == 1 else Boom("and the first question alone")
        return np.ones((len(batch), 3), dtype=np.float32)

    batcher = QueryBatcher(faulty, max_batch=8, wait_ms=50)  # a wide window: the first questions share a batch
    first = _embed_all(batcher, ["a", "b", "c"])
    assert all(isinstance(r, (np.ndarray, BaseException)) for r in first)
    if fault == "not an Exception":
        assert all(isinstance(r, Boom) for r in first)  # the batch's callers are told, not left waiting
    after = _embed_all(batcher, ["d", "e"])  # and the batcher still answers
    assert all(isinstance(r, np.ndarray) for r in after), after


def test_a_caller_waits_at_most_the_timeout_and_the_batcher_goes_on() -> None:
    release = threading.Event()

    def stalled(batch: list[str]) -> np.ndarray:
        if "slow" in batch:
            release.wait(10)
        return np.ones((len(batch), 3), dtype=np.float32)

    batcher = QueryBatcher(stalled, max_batch=1, wait_ms=0, timeout=0.3)
    with pytest.raises(TimeoutError, match=r"not embedded within 0\.3 s"):
        batcher.embed("slow")
    release.set()
    assert _embed_all(batcher, ["fine"])[0].shape == (3,)  # type: ignore[union-attr]
