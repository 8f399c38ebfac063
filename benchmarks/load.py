"""Load: concurrent clients against `partnerbot serve`, over `/api/ask`, `/v1/chat/completions` and Gradio's `/ask`.

One asyncio process plays every client (httpx.AsyncClient, one connection pool per client); each client
has its own address (`X-Forwarded-For`, trusted from loopback as from a local proxy), so each has its own
rate-limit bucket and the server runs with its default limits. Every answer is compared with in-process
`ask()` for the same question. Bounded in count and time; stops by itself.

Usage: python benchmarks/load.py [--clients 32] [--questions 10] [--url URL]
(without --url it starts its own `partnerbot serve` on a free loopback port, and a second one with
batching off for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from common import ROOT, free_port, machine, p50, pct, questions, table, temp_dir

from partnerbot.answering.assistant import Assistant
from partnerbot.index.build import build_index
from partnerbot.settings import Settings

TIME_LIMIT_S = 240
Plan = list[tuple[str, list[str]]]
Ask = Callable[[httpx.AsyncClient, str, list[str]], Awaitable[dict[str, Any]]]


async def api_ask(client: httpx.AsyncClient, question: str, history: list[str]) -> dict[str, Any]:
    r = await client.post("/api/ask", json={"question": question, "history": history})
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


async def chat_completion(client: httpx.AsyncClient, question: str, history: list[str]) -> dict[str, Any]:
    messages = [{"role": "user", "content": h} for h in history] + [{"role": "user", "content": question}]
    r = await client.post("/v1/chat/completions", json={"model": "partnerbot", "messages": messages})
    r.raise_for_status()
    return r.json()["partnerbot"]  # type: ignore[no-any-return]


async def gradio_ask(client: httpx.AsyncClient, question: str, history: list[str]) -> dict[str, Any]:
    """Gradio's own HTTP protocol for `/ask`: queue the call, then read its result from the event stream."""
    r = await client.post("/gradio_api/call/ask", json={"data": [question, history]})
    r.raise_for_status()
    event = ""
    async with client.stream("GET", f"/gradio_api/call/ask/{r.json()['event_id']}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"gradio error: {line[5:].strip()[:200]}")
                return json.loads(line[5:])[0]  # type: ignore[no-any-return]
    raise RuntimeError("gradio stream ended without a result")


class Run:
    """Many clients, each asking its plan in turn; latencies, errors and mismatches with in-process answers."""

    def __init__(self, url: str, expected: dict[tuple[str, tuple[str, ...]], dict[str, Any]]):
        self.url = url
        self.expected = expected

    async def client(self, ident: str, ask: Ask, plan: Plan, pause: float, stop_at: float) -> list[tuple[float, str | None, bool]]:
        out: list[tuple[float, str | None, bool]] = []
        async with httpx.AsyncClient(base_url=self.url, headers={"X-Forwarded-For": ident}, timeout=60) as client:
            for question, history in plan:
                if time.monotonic() > stop_at:
                    break
                t0 = time.perf_counter()
                try:
                    got = await ask(client, question, history)
                    want = self.expected[(question, tuple(history))]
                    same = (got["answer"], got["sources"]) == (want["answer"], want["sources"])
                    out.append(((time.perf_counter() - t0) * 1000, None, same))
                except Exception as exc:  # counted, not raised
                    out.append(((time.perf_counter() - t0) * 1000, repr(exc)[:200], False))
                if pause:
                    await asyncio.sleep(pause)
        return out

    async def many(self, ask: Ask, plans: list[Plan], pause: float = 0.0, prefix: str = "10.1") -> tuple[list, float]:
        stop_at = time.monotonic() + TIME_LIMIT_S
        t0 = time.perf_counter()
        results = await asyncio.gather(*(self.client(f"{prefix}.{i // 250}.{i % 250 + 1}", ask, plan, pause, stop_at)
                                         for i, plan in enumerate(plans)))
        return [r for rs in results for r in rs], time.perf_counter() - t0


def row(case: str, results: list, seconds: float) -> list[object]:
    lat = [r[0] for r in results if r[1] is None]
    errors = [r[1] for r in results if r[1] is not None]
    if errors:
        print(f"  {case}: {len(errors)} errors; first: {errors[0]}", file=sys.stderr)
    return [case, len(results), seconds, len(lat) / seconds, p50(lat), pct(lat, 0.95), pct(lat, 0.99), len(errors),
            sum(1 for r in results if r[1] is None and not r[2])]


def hammer(url: str, stop: Any, counts: Any, loops: int = 4) -> None:
    """One client, in a process of its own, asking as fast as it can over `loops` connections until `stop` is set."""

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-Forwarded-For": "10.99.0.1"}, timeout=60) as client:
            while not stop.is_set():
                r = await client.post("/api/ask", json={"question": "What is HERO Corps?"})
                counts.put(r.status_code)

    async def all_loops() -> None:
        await asyncio.gather(*(loop() for _ in range(loops)))

    asyncio.run(all_loops())


def start_server(data: Any, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve"],
                            env=dict(os.environ, HF_HUB_OFFLINE="1", PARTNERBOT_DATA_DIR=str(data),
                                     PARTNERBOT_CORPUS_DIR=str(ROOT / "corpus"), PARTNERBOT_PORT=str(port), **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"partnerbot serve did not start on {url}")


async def one_client(url: str, local: Assistant, single: Plan) -> tuple[list[float], list[float], int]:
    """One client, each question asked in-process and then over HTTP in turn, so both meet the same machine load.

    The client changes address every 10 questions (two requests each), to stay inside the default rate limit.
    """
    inside, over_http, errors = [], [], 0
    for i, (question, history) in enumerate(single):
        t0 = time.perf_counter()
        local.ask(question, history)
        inside.append((time.perf_counter() - t0) * 1000)
        async with httpx.AsyncClient(base_url=url, headers={"X-Forwarded-For": f"10.7.0.{i // 10 + 1}"}) as client:
            await api_ask(client, question, history)  # a new connection for the first
            t0 = time.perf_counter()
            try:
                await api_ask(client, question, history)
            except httpx.HTTPError:
                errors += 1
            over_http.append((time.perf_counter() - t0) * 1000)
    return inside, over_http, errors


async def measure(url: str, expected: dict, plans: list[Plan], single: Plan, rows: list[list[object]],
                  local: Assistant, label: str = "") -> None:
    run = Run(url, expected)
    await run.many(api_ask, [single[:5]], prefix="10.250")  # warm the server and the connection
    inside, over_http, errors = await one_client(url, local, single[:30])
    print(f"{label}one client, {len(inside)} questions, in turn: in-process ask() p50 {p50(inside):.2f} ms; "
          f"/api/ask p50 {p50(over_http):.2f} ms (+{p50(over_http) - p50(inside):.2f} ms), p95 "
          f"{pct(over_http, 0.95):.2f} ms; {errors} errors")
    rows.append(row(f"{label}/api/ask, {len(plans)} clients", *await run.many(api_ask, plans, prefix="10.2")))
    if label:
        return
    rows.append(row(f"/v1/chat/completions, {len(plans)} clients",
                    *await run.many(chat_completion, plans, prefix="10.3")))
    rows.append(row(f"Gradio /ask, {len(plans)} clients", *await run.many(gradio_ask, plans, prefix="10.4")))
    paced = plans[:16]
    results, seconds = await run.many(api_ask, paced, pause=0.25, prefix="10.5")
    rows.append(row("/api/ask, 16 paced clients alone (before)", results, seconds))
    context = multiprocessing.get_context("spawn")
    stop, statuses = context.Event(), context.Queue()
    hammering = context.Process(target=hammer, args=(url, stop, statuses))
    hammering.start()
    await asyncio.sleep(2)  # it spends its burst first
    results, seconds = await run.many(api_ask, paced, pause=0.25, prefix="10.6")
    stop.set()
    hammering.join(30)
    counts: dict[int, int] = {}
    while not statuses.empty():
        status = statuses.get()
        counts[status] = counts.get(status, 0) + 1
    rows.append(row("/api/ask, 16 paced clients + 1 hammering", results, seconds))
    results, seconds = await run.many(api_ask, paced, pause=0.25, prefix="10.8")
    rows.append(row("/api/ask, 16 paced clients alone (after)", results, seconds))
    print(f"the hammering client: {sum(counts.values())} requests, {counts.get(200, 0)} answered, "
          f"{counts.get(429, 0)} refused with 429, other {sum(v for k, v in counts.items() if k not in (200, 429))}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--url", help="a running server (with the same corpus) instead of starting one")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # as `partnerbot serve` does, so in-process and server ask() compare fairly
    data = temp_dir("load")
    settings = Settings(data_dir=data, corpus_dir=ROOT / "corpus")
    build_index(settings)
    local = Assistant(settings)
    pool = questions()
    rng = random.Random(7)
    plans = [[rng.choice(pool) for _ in range(args.questions)] for _ in range(args.clients)]
    single = [rng.choice(pool) for _ in range(40)]
    everything = [qh for plan in plans for qh in plan] + single
    for q, h in everything[:20]:
        local.ask(q, h)  # warm
    in_process: list[float] = []
    expected = {}
    for q, h in everything:
        t0 = time.perf_counter()
        expected[(q, tuple(h))] = local.ask(q, h).to_dict()
        in_process.append((time.perf_counter() - t0) * 1000)
    in_p50 = statistics.median(in_process)

    rows: list[list[object]] = []
    if args.url:
        asyncio.run(measure(args.url.rstrip("/"), expected, plans, single, rows, local))
    else:
        proc, url = start_server(data)
        try:
            asyncio.run(measure(url, expected, plans, single, rows, local))
        finally:
            proc.terminate()
            proc.wait(15)
        proc, url = start_server(data, PARTNERBOT_EMBED_BATCHING="false")
        try:
            asyncio.run(measure(url, expected, plans, single, rows, local, label="batching off: "))
        finally:
            proc.terminate()
            proc.wait(15)
    print(f"Load: {args.clients} concurrent clients x {args.questions} questions, one asyncio load generator on the "
          f"same machine; {machine()}\n")
    print(f"in-process ask() over the same {len(everything)} questions: p50 {in_p50:.2f} ms, "
          f"p95 {pct(in_process, 0.95):.2f} ms\n")
    print(table(["case", "requests", "seconds", "answers/s", "p50 ms", "p95 ms", "p99 ms", "errors", "mismatches"],
                rows))


if __name__ == "__main__":
    main()
