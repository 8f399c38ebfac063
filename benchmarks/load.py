"""Load: K concurrent gradio_client sessions, each asking M questions from evals/ (both splits).

Bounded in count and time; stops by itself. Every answer is compared with the in-process `ask()`
answer to the same question. Usage: python benchmarks/load.py [K] [M] [--url URL]
(without --url it starts its own `partnerbot serve` on a free loopback port).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import subprocess
import sys
import time

import httpx
from common import ROOT, free_port, machine, p50, pct, questions, table, temp_dir

from partnerbot.answer import Assistant
from partnerbot.index import build_index
from partnerbot.settings import Settings

TIME_LIMIT_S = 300


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("k", nargs="?", type=int, default=32)
    ap.add_argument("m", nargs="?", type=int, default=5)
    ap.add_argument("--url")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    from gradio_client import Client

    data = temp_dir("load")
    s = Settings(data_dir=data, corpus_dir=ROOT / "corpus")
    build_index(s)
    proc = None
    url = args.url
    if not url:
        port = free_port()
        env = dict(os.environ, HF_HUB_OFFLINE="1", PARTNERBOT_DATA_DIR=str(data), PARTNERBOT_PORT=str(port),
                   PARTNERBOT_CONCURRENCY=str(args.concurrency))
        proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
    local = Assistant(s)
    pool_q = questions()
    rng = random.Random(7)
    plans = [[rng.choice(pool_q) for _ in range(args.m)] for _ in range(args.k)]
    expected = {(q, tuple(h)): local.ask(q, h).to_dict() for plan in plans for q, h in plan}
    stop_at = time.monotonic() + TIME_LIMIT_S

    server_ms: list[float] = []

    def session(plan: list[tuple[str, list[str]]]) -> list[tuple[float, str | None, bool]]:
        client = Client(url, verbose=False)
        out = []
        for q, h in plan:
            if time.monotonic() > stop_at:
                break
            t0 = time.perf_counter()
            try:
                got = client.predict(q, h, api_name="/ask")
                want = expected[(q, tuple(h))]
                server_ms.append(got["timings_ms"].get("total", 0.0))
                same = (got["answer"], got["sources"]) == (want["answer"], want["sources"])
                out.append(((time.perf_counter() - t0) * 1000, None, same))
            except Exception as exc:  # counted, not raised
                out.append(((time.perf_counter() - t0) * 1000, repr(exc)[:200], False))
        return out

    t0 = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(args.k) as ex:
            results = [r for rs in ex.map(session, plans) for r in rs]
    finally:
        if proc:
            proc.terminate()
            proc.wait(15)
    wall = time.perf_counter() - t0
    lat = [r[0] for r in results if r[1] is None]
    errors = [r[1] for r in results if r[1] is not None]
    mismatches = sum(1 for r in results if r[1] is None and not r[2])
    print(f"Load: {args.k} concurrent sessions x {args.m} questions via gradio_client /ask; "
          f"queue concurrency {args.concurrency}; {machine()}\n")
    print(table(["requests", "seconds", "throughput req/s", "p50 ms", "p95 ms", "p99 ms", "ask() in server p50 / p95 ms",
                 "errors", "mismatches"],
                [[len(results), wall, len(results) / wall, p50(lat), pct(lat, 0.95), pct(lat, 0.99),
                  f"{p50(server_ms):.1f} / {pct(server_ms, 0.95):.1f}", len(errors), mismatches]]))
    if errors:
        print("\nfirst error:", errors[0])


if __name__ == "__main__":
    main()
