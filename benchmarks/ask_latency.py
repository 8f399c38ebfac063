"""Warm `ask()` latency over evals/ (both splits), next to the time of one query embedding (the floor)."""

from __future__ import annotations

import time

from common import ROOT, machine, p50, pct, questions, table, temp_dir

from partnerbot.answering.assistant import Assistant
from partnerbot.index.build import build_index
from partnerbot.index.embed import embed_query
from partnerbot.settings import Settings


def main(rounds: int = 3) -> None:
    s = Settings(data_dir=temp_dir("ask"), corpus_dir=ROOT / "corpus")
    build_index(s)
    assistant = Assistant(s)
    qs = questions()
    for q, h in qs[:10]:
        assistant.ask(q, h)  # warm
    embed, ask = [], []
    for _ in range(rounds):
        for q, h in qs:
            t0 = time.perf_counter()
            embed_query(s, q)
            embed.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            assistant.ask(q, h)
            ask.append((time.perf_counter() - t0) * 1000)
    print(f"Warm ask() over {len(qs)} questions x {rounds}; {machine()}\n")
    print(table(["measure", "p50 ms", "p95 ms", "p99 ms"], [
        ["one query embedding", p50(embed), pct(embed, 0.95), pct(embed, 0.99)],
        ["ask()", p50(ask), pct(ask, 0.95), pct(ask, 0.99)],
    ]))
    print(f"\nask() p50 / embedding p50 = {p50(ask) / p50(embed):.2f}x")


if __name__ == "__main__":
    main()
