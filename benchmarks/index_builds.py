"""Index build times: full build, no-change reindex, one-document change; and scaling to 10x/100x corpora.

Synthetic corpora recombine real sections under new ids (no paraphrasing): document i of copy k takes
the sections of real documents in a rotated order, so texts differ while the vocabulary stays real.
Peak memory is the resident set size reported by the kernel for a fresh process per size.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine, p50, pct, table, temp_dir


def synth_corpus(target: Path, factor: int) -> int:
    from partnerbot.corpus.chunk import sections
    from partnerbot.corpus.parse import load_corpus

    docs = load_corpus(ROOT / "corpus")
    secs = [(d, s) for d in docs for s in sections(d) if s.heading != "Overview"]
    n = 0
    target.mkdir(parents=True, exist_ok=True)
    for k in range(factor):
        for i, d in enumerate(docs):
            picks = [secs[(i * 7 + k * 13 + j) % len(secs)] for j in range(5)]
            body = "\n\n".join(f"## {s.heading}\n\n{src.text[s.start:s.end].strip()}" for src, s in picks)
            doc_id = f"{d.id}-x{k}"
            (target / f"{doc_id}.md").write_text(
                f'---\nid: {doc_id}\ntitle: "{d.title} (synthetic {k})"\nurl: {d.url}\ndate: {d.date}\n'
                f"component: {d.component}\nsources:\n  - {d.url}\nsummary: \"Synthetic recombination.\"\n---\n\n"
                f"# {d.title} (synthetic {k})\n\n{body}\n", encoding="utf-8")
            n += 1
    return n


def run_cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "partnerbot.cli", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def child(data: str, corpus: str) -> None:
    """Build, then time ask() p95, in this process; print JSON with the peak RSS."""
    from partnerbot.answering.assistant import Assistant
    from partnerbot.index.build import build_index
    from partnerbot.settings import Settings

    s = Settings(data_dir=Path(data), corpus_dir=Path(corpus))
    t0 = time.perf_counter()
    summary = build_index(s)
    build = time.perf_counter() - t0
    a = Assistant(s)
    qs = ["What is the 287(g) program?", "When were the Border Enforcement Security Task Forces created?",
          "What does the Cyber Crimes Center do?", "Who is Albence?", "What is HERO Corps?"] * 8
    a.ask(qs[0])
    lat = []
    for q in qs:
        t = time.perf_counter()
        a.ask(q)
        lat.append((time.perf_counter() - t) * 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"build_s": build, "chunks": summary.chunks_total, "p50": p50(lat), "p95": pct(lat, 0.95),
                      "rss_mb": rss}))


def main(factors: tuple[int, ...] = (1, 10, 100)) -> None:
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", PARTNERBOT_EVAL_GATE="false")
    data = temp_dir("builds")
    corpus = data / "corpus"
    import shutil

    shutil.copytree(ROOT / "corpus", corpus)
    env.update(PARTNERBOT_DATA_DIR=str(data / "d"), PARTNERBOT_CORPUS_DIR=str(corpus))
    full = run_cli(["index"], env)
    same = run_cli(["index"], env)
    noop = run_cli(["--help"], env)
    best = corpus / "best.md"
    best.write_text(best.read_text().replace("Laredo, Texas", "Laredo,  Texas", 1))
    one = run_cli(["index"], env)
    print(f"Index builds (CLI, wall clock incl. interpreter start); {machine()}\n")
    print(table(["build", "seconds"], [["full build (11 documents)", full], ["no-change reindex", same],
                                        ["one-document change", one], ["`partnerbot --help` (start-up floor)", noop]]))
    rows = []
    for f in factors:
        d = temp_dir(f"scale{f}")
        n = synth_corpus(d / "corpus", f) if f > 1 else len(list(shutil.copytree(ROOT / "corpus", d / "corpus").glob("*.md")))
        out = subprocess.run([sys.executable, __file__, "--child", str(d / "data"), str(d / "corpus")],
                             env=env, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append([f"{f}x", n, r["chunks"], r["build_s"], r["p50"], r["p95"], r["rss_mb"]])
        shutil.rmtree(d, ignore_errors=True)
    print("\nScaling (in-process full build; ask() over 40 questions)\n")
    print(table(["corpus", "documents", "chunks", "build s", "ask p50 ms", "ask p95 ms", "peak RSS MB"], rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main(tuple(int(x) for x in sys.argv[1:]) or (1, 10, 100))
