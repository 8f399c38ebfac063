"""Hybrid against dense-only, BM25-only and the newcomer's llama-index baseline, in one run.

Prints a Markdown table of the eval metrics over the test split.
"""

from __future__ import annotations

from common import ROOT, machine, table, temp_dir

from partnerbot.answering.assistant import Assistant
from partnerbot.evaluation.cases import load_cases
from partnerbot.evaluation.metrics import metrics, run_cases
from partnerbot.index.build import build_index
from partnerbot.settings import Settings

COLUMNS = ["pass_rate", "wrong_answer_rate", "answer_precision", "evidence_hit@1", "hit@1", "hit@3",
           "refusal_accuracy", "false_refusal_rate", "latency_ms_p50", "latency_ms_p95"]


def main() -> None:
    from baseline import BaselineAssistant

    data = temp_dir("retrievers")
    base = Settings(data_dir=data, corpus_dir=ROOT / "corpus")
    build_index(base)
    cases = load_cases([ROOT / "evals" / "test"])
    rows = []
    for mode in ("hybrid", "dense", "bm25"):
        assistant = Assistant(Settings(data_dir=data, corpus_dir=ROOT / "corpus", retriever=mode))
        assistant.ask("warm up")
        m = metrics(run_cases(assistant, cases))
        rows.append([mode] + [m[c] for c in COLUMNS])
    baseline = BaselineAssistant(base)
    baseline.ask("warm up")
    m = metrics(run_cases(baseline, cases))
    rows.append(["llama-index defaults (top-k 2)"] + [m[c] for c in COLUMNS])
    print(f"Retrievers over the test split ({len(cases)} cases); {machine()}\n")
    print(table(["retriever", *COLUMNS], rows))


if __name__ == "__main__":
    main()
