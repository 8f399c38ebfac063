"""Check train case files and show how many cases cite each corpus sentence (for writers of train cases).

    python evals/coverage.py evals/train/FILE.yaml [more files] [--doc DOC_ID] [--all]

Validates every case (the same loader as `partnerbot eval`) and that each evidence quote occurs exactly
once in the corpus, then prints, for each sentence of the documents the files cite (or of `--doc`), how
many cases list it as evidence. `--all` also counts the other train files. Needs no model and no index.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from partnerbot.corpus.chunk import document_sentences  # noqa: E402
from partnerbot.corpus.parse import load_corpus  # noqa: E402
from partnerbot.errors import PartnerbotError  # noqa: E402
from partnerbot.evaluation.cases import case_files, load_cases  # noqa: E402
from partnerbot.evaluation.evidence import locate_evidence  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--doc", action="append", default=[], help="show these documents' sentences")
    parser.add_argument("--all", action="store_true", help="count every file in evals/train/ too")
    args = parser.parse_args()
    if any("test" in p.parts for p in args.files):
        print("coverage.py is for train files; it does not read evals/test/", file=sys.stderr)
        return 2
    docs = {d.id: d for d in load_corpus(HERE.parent / "corpus")}
    files = list(args.files)
    if args.all:
        files = sorted({p.resolve() for p in case_files([HERE / "train"])} | {p.resolve() for p in files})
    try:
        cases = load_cases(files, docs)
        spans = locate_evidence(cases, {d: doc.text for d, doc in docs.items()})
    except PartnerbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts: collections.Counter[tuple[str, int]] = collections.Counter()
    sentences = {d: document_sentences(doc) for d, doc in docs.items()}
    for case in cases:
        hit: set[tuple[str, int]] = set()
        for quote in case.evidence:
            span = spans[quote]
            for k, s in enumerate(sentences[span.doc_id]):
                if s.start < span.end and span.start < s.end:
                    hit.add((span.doc_id, k))
        counts.update(hit)
    shown = args.doc or sorted({s.doc_id for s in spans.values()})
    in_scope = sum(c.in_scope for c in cases)
    print(f"{len(cases)} cases ({in_scope} in scope, {sum(c.refuse for c in cases)} refuse) in {len(files)} file(s): valid")
    for doc_id in shown:
        print(f"\n## {doc_id}")
        for k, s in enumerate(sentences[doc_id]):
            print(f"{counts[(doc_id, k)]:3d}  [{k}] {s.text[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
