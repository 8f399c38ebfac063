"""The baseline a newcomer would build in twenty lines: llama-index defaults, same embedding model.

`VectorStoreIndex` over the corpus with its default splitter (1024 tokens, overlap 200), top-k 2,
and the retrieved chunks returned as the answer, each cited. It never refuses.
"""

from __future__ import annotations

import time
from typing import Any

from common import ROOT

from partnerbot.answers import Answer, Outcome, Passage
from partnerbot.corpus.parse import load_corpus
from partnerbot.index.embed import embed_model
from partnerbot.settings import Settings
from partnerbot.types import Source


class BaselineAssistant:
    """`ask()`, `doc_ids()` and `document()` like `partnerbot.answering.assistant.Assistant`, built the default way."""

    def __init__(self, settings: Settings):
        from llama_index.core import Document, VectorStoreIndex

        self.docs = {d.id: d for d in load_corpus(ROOT / "corpus")}
        index = VectorStoreIndex.from_documents(
            [Document(text=d.text, metadata={"doc": d.id}) for d in self.docs.values()],
            embed_model=embed_model(settings),
        )
        self.retriever = index.as_retriever(similarity_top_k=2)
        self.version = "baseline"

    def ask(self, question: str, history: list[str] | None = None) -> Answer:
        t0 = time.perf_counter()
        nodes = self.retriever.retrieve(question)
        sources, passages = [], []
        for n, hit in enumerate(nodes, 1):
            doc = self.docs[hit.node.metadata["doc"]]
            text = hit.node.get_content()
            start = doc.text.find(text)
            sources.append(Source(n, doc.id, doc.title, doc.url, doc.date, "", text, start, start + len(text),
                                  float(hit.score or 0)))
            passages.append(Passage(text, (n,)))
        return Answer(question, Outcome.ANSWERED, tuple(passages), tuple(sources),
                      timings_ms={"total": (time.perf_counter() - t0) * 1000},
                      retrieved_doc_ids=tuple(s.doc_id for s in sources))

    def doc_ids(self) -> list[str]:
        return list(self.docs)

    def document(self, doc_id: str) -> Any:
        return self.docs.get(doc_id)
