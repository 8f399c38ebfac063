"""Malformed requests beside ordinary ones: does one bad request slow anyone else down?

A fresh `partnerbot serve` on a free loopback port (rate limit off: this measures isolation, not the limit).
Each round sends 64 ordinary questions at once over `/api/ask`, alone, and then again while 16 malformed
requests hit the server at the same moment (lone surrogates in the question, a history turn and an OpenAI
message; invalid UTF-8; broken JSON; markup only; control characters only). The rounds alternate, so both
meet the same machine load. Reported: the ordinary questions' p50 and p95 in each case (median over the
rounds), the ratio of the p95s (target: at most 1.5), every malformed request's status (target: no 5xx),
and whether every ordinary answer equals its answer alone.

Usage: python benchmarks/malformed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from typing import Any

import httpx
from common import ROOT, machine, p50, pct, questions, table, temp_dir
from load import start_server

sys.path.insert(0, str(ROOT / "tests"))
from partnerbot.index.build import build_index
from partnerbot.settings import Settings
from test_boundary import MALFORMED, encode  # the requests the boundary tests send


async def send(client: httpx.AsyncClient, path: str, body: bytes) -> tuple[float, int, dict[str, Any]]:
    t0 = time.perf_counter()
    r = await client.post(path, content=body, headers={"content-type": "application/json"})
    try:
        data = r.json()
    except ValueError:  # a plain-text reply (what a server without the JSON error handlers sends on a 500)
        data = {}
    return (time.perf_counter() - t0) * 1000, r.status_code, data


async def one_round(url: str, plan: list[tuple[str, list[str]]], bad: bool) -> tuple[list, list]:
    """The ordinary questions' (ms, status, JSON), and the malformed requests' statuses."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)  # a connection each, as separate users
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        ordinary = [send(client, "/api/ask", encode({"question": q, "history": h})) for q, h in plan]
        extra = [send(client, path, body) for path, body in (MALFORMED * 2)] if bad else []
        results = await asyncio.gather(*ordinary, *extra)
    return list(results[: len(plan)]), [status for _, status, _ in results[len(plan):]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    data = temp_dir("malformed")
    build_index(Settings(data_dir=data, corpus_dir=ROOT / "corpus"))
    plan = random.Random(20).sample(questions(), 64)
    proc, url = start_server(data, PARTNERBOT_RATE_LIMIT="0")
    try:
        asyncio.run(one_round(url, plan[:16], False))  # warm the server
        alone_p95, mixed_p95, alone_p50, mixed_p50, bad_statuses = [], [], [], [], []
        expected: list[dict[str, Any]] | None = None
        mismatches = errors = 0
        for _ in range(args.rounds):
            for bad in (False, True):
                results, statuses = asyncio.run(one_round(url, plan, bad))
                ms = [r[0] for r in results]
                errors += sum(1 for r in results if r[1] != 200)
                answers = [(r[2].get("answer"), r[2].get("sources")) for r in results]
                if expected is None:
                    expected = [r[2] for r in results]
                mismatches += sum(1 for a, e in zip(answers, expected, strict=True)
                                  if a != (e.get("answer"), e.get("sources")))
                (mixed_p95 if bad else alone_p95).append(pct(ms, 0.95))
                (mixed_p50 if bad else alone_p50).append(p50(ms))
                bad_statuses += statuses
    finally:
        proc.terminate()
        proc.wait(15)
    alone, mixed = statistics.median(alone_p95), statistics.median(mixed_p95)
    counts = {s: bad_statuses.count(s) for s in sorted(set(bad_statuses))}
    print(f"Malformed requests beside ordinary ones: {args.rounds} rounds of 64 ordinary questions at once over "
          f"/api/ask, alone and with 16 malformed requests; {machine()}\n")
    print(table(["case", "ordinary p50 ms", "ordinary p95 ms", "p95 per round"], [
        ["64 ordinary alone", statistics.median(alone_p50), alone, ", ".join(f"{v:.0f}" for v in alone_p95)],
        ["64 ordinary + 16 malformed", statistics.median(mixed_p50), mixed, ", ".join(f"{v:.0f}" for v in mixed_p95)],
    ]))
    print(f"\np95 ratio (with / without malformed): {mixed / alone:.2f} (target: at most 1.5)")
    print(f"malformed requests' statuses: {counts} (target: no 5xx)")
    print(f"ordinary questions: {errors} not answered with 200, {mismatches} answers differing from the first run")
    if mixed / alone > 1.5 or any(s >= 500 for s in bad_statuses) or errors or mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
