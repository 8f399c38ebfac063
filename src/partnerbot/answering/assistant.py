"""`Assistant.ask`: the one path from a question to a cited, extractive answer, a "not sure", or a refusal.

The `Assistant` composes four components and keeps nothing else:
- `IndexSnapshots` (index layer): the loaded index version, following the active pointer;
- `Retriever`: normalises the question, adds a follow-up's topic, embeds it and retrieves chunks;
- `Reader`: scores the candidate sentences and chooses answered, uncertain or declined;
- `Writer` (only with `llm_url` set): a language model rewrites the chosen quotes, each sentence checked.

Input is cleaned once, here (`sanitize`), so no component sees raw user text. What is matched (retrieval,
the reader, the language check) is the question with compatibility forms folded (`sanitize.fold`: `２８７（ｇ）`
is `287(g)`); what the answer shows is the question as cleaned, as typed.

`ask` raises typed errors (`errors`); each front end maps them once, at its edge (`serving.replies`, the
CLI's exit codes, the evaluation run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from partnerbot.answering.language import foreign_reply
from partnerbot.answering.reader import Reader, Reading
from partnerbot.answering.reader.features import Candidates, Query, featurize
from partnerbot.answering.retrieve import Retriever
from partnerbot.answering.writer import Writer
from partnerbot.answers import Answer, Outcome, Passage
from partnerbot.errors import StoreError
from partnerbot.index.read import DocInfo, IndexSnapshot
from partnerbot.index.snapshots import IndexSnapshots
from partnerbot.phrases import REFUSAL, UNCERTAIN
from partnerbot.sanitize import clean_history, clean_question, fold
from partnerbot.settings import Settings
from partnerbot.types import Hit, Page, Source

# Told of each declined or uncertain question from the public (`unanswered.recorder`).
Unanswered = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A question made ready for the reader: its query, retrieved chunks and scored candidates."""

    snapshot: IndexSnapshot
    query: Query
    hits: list[Hit]
    candidates: Candidates
    embed_ms: float = 0.0


class Assistant:
    """Answers questions from the active index version with the fitted reader."""

    def __init__(self, settings: Settings, *, snapshots: IndexSnapshots | None = None,
                 retriever: Retriever | None = None, reader: Reader | None = None, writer: Writer | None = None,
                 unanswered: Unanswered | None = None):
        """Each component not given is built from `settings`: the reader on first use, and the writer on
        first use only when `settings.llm_url` is set.

        `unanswered` is told of each declined or uncertain question. Front ends that answer people pass
        `unanswered.recorder(settings)`; evaluation runs pass nothing, so their refuse cases never pass for
        questions from the public.
        """
        self.settings = settings
        self.snapshots = snapshots or IndexSnapshots(settings)
        self.retriever = retriever or Retriever(settings)
        self._reader = reader
        self._writer = writer
        self._unanswered = unanswered

    @property
    def reader(self) -> Reader:
        """The fitted reader (`Reader.load` on first use).

        Raises:
            SelectorError: no usable reader artifact.
        """
        if self._reader is None:
            self._reader = Reader.load(self.settings)
        return self._reader

    @property
    def writer(self) -> Writer | None:
        """The writer of generated answers when `settings.llm_url` is set, else None.

        Raises:
            VerifierError: the calibrated verification threshold is missing.
        """
        if self._writer is None and self.settings.generation.llm_url:
            self._writer = Writer(self.settings)
        return self._writer

    @property
    def version(self) -> str:
        """The loaded index version's id, or "" before the first question."""
        return self.snapshots.version

    def check(self) -> IndexSnapshot:
        """Load the reader, the writer (with `llm_url` set) and the index version now, so that a server fails
        before it listens rather than on its first question.

        Raises:
            PartnerbotError: no usable reader, writer (the verification threshold) or index; the message says
                what to run. `StoreUnavailableError` when the store cannot be reached.
        """
        self.reader  # noqa: B018 - loaded for its errors
        self.writer  # noqa: B018
        return self.snapshots.current()

    def health(self) -> dict[str, Any]:
        """The active version and whether the vector store answers."""
        return self.snapshots.health()

    def doc_ids(self) -> list[str]:
        """The document ids of the active version."""
        return list(self.snapshots.current().docs)

    def document(self, doc_id: str) -> DocInfo | None:
        """A document of the active version (for the source viewer), or None."""
        return self.snapshots.current().docs.get(doc_id)

    def prepare(self, question: str, history: Sequence[str] = ()) -> Prepared:
        """Retrieve chunks for a cleaned question and compute its candidates' features.

        Raises:
            StoreError / StoreUnavailableError: the vector store failed, or cannot be reached.
        """
        return self._prepare(self.snapshots.current(), question, history)

    def _prepare(self, snapshot: IndexSnapshot, question: str, history: Sequence[str]) -> Prepared:
        found = self.retriever.retrieve(snapshot, fold(question), [fold(t) for t in history])
        return Prepared(snapshot, found.query, found.hits, featurize(snapshot, found.query, found.hits),
                        found.embed_ms)

    def ask(self, question: str, history: Sequence[str] = ()) -> Answer:
        """Answer `question` from the corpus, using `history` (earlier user turns) for follow-ups.

        `question` and `history` are cleaned here (`sanitize`): anything may be passed. Only the last
        `sanitize.HISTORY_TURNS` earlier turns are read, and turns that are not text are left out.

        Returns:
            The answer: answered, uncertain or declined.

        Raises:
            InputError: the question is unusable (not text, empty once cleaned, too long); `field` names it.
            StoreError / StoreUnavailableError: the vector store failed, or cannot be reached (the next
                question connects again).
            IndexNotBuiltError / IndexMismatchError / SelectorError / VerifierError: no usable index, reader
                or writer; the message says what to run.
        """
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.answering.max_question_chars)
        turns = clean_history(history, self.settings.answering.max_question_chars)
        try:
            return self._answer(q, turns, t0)
        except StoreError:
            self.snapshots.forget()  # reconnect and reload on the next question
            raise

    def _answer(self, q: str, turns: list[str], t0: float) -> Answer:
        """The answer to the cleaned question `q` (see `ask` for what it raises)."""
        snapshot = self.snapshots.current()
        reply = foreign_reply(fold(q), snapshot.normalizer.vocabulary)
        if reply is not None:
            self._log(q)
            return Answer(q, Outcome.DECLINED, notice=reply.text, timings_ms={"total": _ms(t0)},
                          index_version=snapshot.version, language=reply.code)
        t1 = time.perf_counter()
        prepared = self._prepare(snapshot, q, turns)  # the same version answers the whole question
        t2 = time.perf_counter()
        reading = self.reader.read(snapshot, prepared.candidates, prepared.query)
        outcome = Outcome(reading.outcome)
        passages, sources = compose(snapshot, reading)
        t3 = time.perf_counter()
        # embed: the question's vector (batched in `serve`); retrieve: normalising, retrieval and features;
        # compose: reading the candidates and writing the cited answer.
        timings = {"load": (t1 - t0) * 1000, "embed": prepared.embed_ms,
                   "retrieve": (t2 - t1) * 1000 - prepared.embed_ms, "compose": (t3 - t2) * 1000,
                   "total": (t3 - t0) * 1000}
        if outcome != Outcome.ANSWERED:
            self._log(q)  # declined and uncertain questions are what staff should label next
        if outcome == Outcome.DECLINED:  # a decline cites nothing
            passages, sources = (), ()
        notice = {Outcome.DECLINED: REFUSAL, Outcome.UNCERTAIN: UNCERTAIN}.get(outcome, "")
        answer = Answer(q, outcome, passages, sources, notice, timings,
                        tuple(dict.fromkeys(h.chunk.doc_id for h in prepared.hits)), snapshot.version)
        if outcome == Outcome.ANSWERED and self.writer is not None:  # a model rewrites the chosen quotes
            return self.writer.write(answer, snapshot.sentence_vecs[[i for i, _ in reading.picked]])
        return answer

    def _log(self, question: str) -> None:
        if self._unanswered is not None:
            self._unanswered(question)


def compose(snapshot: IndexSnapshot, reading: Reading) -> tuple[tuple[Passage, ...], tuple[Source, ...]]:
    """The sentences the reading picked, each citing its source, and the sources in citation order."""
    sources: list[Source] = []
    passages: list[Passage] = []
    for i, score in reading.picked:
        sent = snapshot.sentences[i]
        doc = snapshot.docs[sent.doc_id]
        n = len(sources) + 1
        page = sent.pages[0] if sent.pages else Page(doc.url, doc.date, doc.title)
        sources.append(Source(n, doc.id, doc.title, page.url, page.date, sent.section, sent.text, sent.start,
                              sent.end, round(score, 4), doc_url=doc.url, page_title=page.title, pages=sent.pages))
        passages.append(Passage(sent.text, (n,)))
    return tuple(passages), tuple(sources)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
