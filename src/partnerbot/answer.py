"""`Assistant.ask`: the one path from a question to a cited, extractive answer or a refusal.

The pipeline: clean the input (`sanitize`), tell its language, normalise it against the corpus, add the
conversation's topic to a follow-up, retrieve chunks, score candidate sentences with the fitted
selector (`features`, `selector`) and choose the answer or refuse (`refusal`); with `llm_url` set, a
language model rewrites the chosen sentences and each of its sentences is checked (`writer`). The `Assistant`
itself keeps the loaded index version current and reports health.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import store, unanswered
from .embed import query_embedder
from .errors import IndexNotBuiltError, InputError, PartnerbotError, SelectorError, StoreUnavailableError
from .language import foreign_reply
from .phrases import NOT_READY, REFUSAL, UNAVAILABLE, UNCERTAIN, cite
from .reader import Reader, Reading
from .reader.features import Candidates, Query, featurize
from .reader.model import Selector, read_selector
from .retrieve import retrieve
from .sanitize import clean_history, clean_question
from .settings import Settings
from .text import PRONOUNS, STOPWORDS, tokens
from .types import Answer, Hit, Outcome, Page, Problem, ProblemKind, Source
from .version import Version, load_version
from .writer import Writer


def _is_elliptical(question: str) -> bool:
    """Does the question lean on an earlier turn for its topic ("When were they created?")?"""
    words = question.split()
    toks = tokens(question)
    content = [t for t in toks if t not in STOPWORDS]
    named = any(
        (w[:1].isupper() and i > 0) or (re.search(r"\d", w) and re.search(r"[A-Za-z]", w)) or (w.isupper() and len(w) > 1)
        for i, w in enumerate(words)
    )
    if named:
        return False
    return len(content) <= 1 or any(t in PRONOUNS for t in toks)


def contextual_query(question: str, history: Sequence[str]) -> str:
    """The retrieval query: the question, plus the latest topical earlier turn if it is elliptical."""
    if not history or not _is_elliptical(question):
        return question
    for turn in reversed(history):
        if not _is_elliptical(turn):
            return f"{turn} {question}"
    return f"{history[-1]} {question}"


@dataclass(frozen=True)
class Prepared:
    """A question made ready for selection: its query, retrieved chunks and scored candidates."""

    state: Version
    query: Query
    hits: list[Hit]
    candidates: Candidates
    embed_ms: float = 0.0


class Assistant:
    """Answers questions from the active index version; reloads when the version switches."""

    def __init__(self, settings: Settings, pointer_check_seconds: float = 1.0, version: str | None = None,
                 check_selector: bool = True, front_end: bool = False,
                 embedder: Callable[[str], np.ndarray] | None = None):
        """`version` pins one index version (the eval gate); by default the active one is followed.

        `check_selector=False` skips the check that the version records the installed selector
        (the reindex gate and `partnerbot tune` read versions built with an earlier one).
        `front_end=True` marks an assistant that answers people (the chat page, `ask`, `chat`): only its
        refusals go to the unanswered log, and only when `settings.log_unanswered` is on. Evaluation
        runs leave it off, so their refuse cases never pass for questions from the public.
        `embedder` embeds one question (default: one at a time; `serve` passes a batching one).
        """
        self.settings = settings
        self._log_unanswered = front_end and settings.log_unanswered
        self._embed = embedder or query_embedder(settings, batching=False)
        self._pinned = version
        self._check_selector = check_selector
        self._lock = threading.Lock()
        self._client: Any = None
        self._state: Version | None = None
        self._reader: Reader | None = None
        self._writer: Writer | None = None
        self._checked = 0.0
        self._interval = pointer_check_seconds

    @property
    def writer(self) -> Writer:
        """The generated-answer writer (when `llm_url` is set), built once.

        Raises:
            VerifierError: the calibrated verification threshold is missing.
        """
        if self._writer is None:
            self._writer = Writer(self.settings)
        return self._writer

    # -- version management -------------------------------------------------------------
    @property
    def reader(self) -> Reader:
        """The fitted reader, read once from `settings.selector_path`.

        Raises:
            SelectorError: the artifact is missing, does not fit this version of partnerbot, or was fitted
                with another embedding model than the configured one.
        """
        if self._reader is None:
            selector = read_selector(self.settings.selector_path)
            sha = self.settings.model_sha256
            if self._check_selector and selector.embed_sha256 != sha:
                raise SelectorError(
                    f"{self.settings.selector_path}: the answer selector was fitted with embedding model weights "
                    f"{selector.embed_sha256[:12]}, but the configured model ({self.settings.model_path}) has "
                    f"{sha[:12]}; run `partnerbot tune`, then `partnerbot index`")
            self._reader = Reader(selector, self.settings.max_sentences)
        return self._reader

    @property
    def selector(self) -> Selector:
        """The fitted selector and scope model (see `reader`)."""
        return self.reader.selector

    def snapshot(self) -> Version:
        """The index version questions are answered from now (reloaded when the active pointer moves).

        Raises:
            StoreUnavailableError: the vector store cannot be reached.
            IndexNotBuiltError / IndexMismatchError: no usable index.
        """
        return self._current()

    def _current(self) -> Version:
        now = time.monotonic()
        state = self._state
        if state is not None and now - self._checked < self._interval:
            return state
        selector_id = self.selector.id if self._check_selector else None
        with self._lock:
            try:
                if self._client is None:
                    self._client = store.connect(self.settings)
                version = self._pinned or store.read_pointer(self._client).version
            except StoreUnavailableError:
                self._client = None
                raise
            if self._state is None or self._state.version != version:
                self._state = load_version(self._client, self.settings, version, selector_id)
            self._checked = time.monotonic()
            return self._state

    @property
    def version(self) -> str:
        return self._state.version if self._state else ""

    def health(self) -> dict[str, Any]:
        """The active version and whether the vector store answers."""
        try:
            client = self._client or store.connect(self.settings)
            version = store.read_pointer(client).version
            return {"ok": True, "store_reachable": True, "index_version": version, "store": store.describe(self.settings)}
        except StoreUnavailableError:
            return {"ok": False, "store_reachable": False, "index_version": self.version, "store": store.describe(self.settings)}
        except IndexNotBuiltError as exc:
            return {"ok": False, "store_reachable": True, "index_version": None, "error": str(exc)}

    def doc_ids(self) -> list[str]:
        """The document ids of the active version."""
        return list(self._current().docs)

    def document(self, doc_id: str) -> Any:
        """A document of the active version (for the source viewer), or None."""
        return self._current().docs.get(doc_id)

    # -- answering -------------------------------------------------------------------------
    def prepare(self, question: str, history: Sequence[str] = ()) -> Prepared:
        """Normalise a cleaned question, retrieve chunks and compute its candidates' features.

        Raises:
            StoreUnavailableError: the vector store cannot be reached.
        """
        state = self._current()
        normal = state.normalizer
        q = normal(question)
        context = contextual_query(q, [normal(t) for t in history])
        t0 = time.perf_counter()
        vector = self._embed(context)
        embed_ms = _ms(t0)
        hits = retrieve(state, state.expand(context), vector, self.settings.retriever, self.settings.top_k)
        query = Query(q, context, vector)
        return Prepared(state, query, hits, featurize(state, query, hits), embed_ms)

    def ask(self, question: str, history: Sequence[str] = ()) -> Answer | Problem:
        """Answer `question` from the corpus, using `history` (earlier user turns) for follow-ups.

        Both are cleaned first (`sanitize`), so nothing else here sees raw user text.

        Returns:
            An `Answer` (answered, uncertain or declined), or a `Problem`: the input is unusable (empty, too
            long, not text), the document store cannot be reached, or there is no usable index or reader.
            Anything unexpected is raised.
        """
        t0 = time.perf_counter()
        try:
            q = clean_question(question, self.settings.max_question_chars)
            turns = clean_history(history, self.settings.max_question_chars)
            return self._answer(q, turns, t0)
        except InputError as exc:
            text = str(exc)
            return Problem(ProblemKind.INPUT, f"{text[:1].upper()}{text[1:]}.", exc.field or "question")
        except StoreUnavailableError as exc:
            with self._lock:  # reconnect and reload on the next question
                self._client, self._state, self._checked = None, None, 0.0
            return Problem(ProblemKind.UNAVAILABLE, UNAVAILABLE, detail=str(exc), cause=exc)
        except PartnerbotError as exc:  # no usable index or reader: the message says what to run
            return Problem(ProblemKind.NOT_READY, NOT_READY, detail=str(exc), cause=exc)

    def _answer(self, q: str, turns: list[str], t0: float) -> Answer:
        """The answer to the cleaned question `q`.

        Raises:
            StoreUnavailableError: the vector store cannot be reached.
            IndexNotBuiltError / IndexMismatchError / SelectorError: no usable index or reader.
        """
        state = self._current()
        reply = foreign_reply(q, state.normalizer.vocabulary)
        if reply is not None:
            self._unanswered(q)
            return Answer(q, reply.text, (), True, {"total": _ms(t0)}, (), state.version, language=reply.code,
                          outcome=Outcome.DECLINED)
        t1 = time.perf_counter()
        prepared = self.prepare(q, turns)
        t2 = time.perf_counter()
        reading = self._read(prepared)
        text, sources = _compose(state, reading)
        t3 = time.perf_counter()
        # embed: the question's vector (batched in `serve`); retrieve: normalising, retrieval and features;
        # compose: reading the candidates and writing the cited answer.
        timings = {"load": (t1 - t0) * 1000, "embed": prepared.embed_ms,
                   "retrieve": (t2 - t1) * 1000 - prepared.embed_ms, "compose": (t3 - t2) * 1000,
                   "total": (t3 - t0) * 1000}
        doc_ids = tuple(dict.fromkeys(h.chunk.doc_id for h in prepared.hits))
        outcome = Outcome(reading.outcome)
        if outcome != Outcome.ANSWERED:
            self._unanswered(q)  # declined and uncertain questions are what staff should label next
        if outcome == Outcome.DECLINED:
            return Answer(q, REFUSAL, (), True, timings, doc_ids, state.version, evidence=reading.scores,
                          outcome=outcome)
        answer = Answer(q, text, tuple(sources), False, timings, doc_ids, state.version, evidence=reading.scores,
                        outcome=outcome)
        if outcome == Outcome.ANSWERED and self.settings.llm_url:
            # a model rewrites the chosen quotes
            return self.writer.write(answer, state.sentence_vecs[[i for i, _ in reading.picked]])
        return answer

    def _unanswered(self, question: str) -> None:
        """Record a declined or uncertain question: the one place every front end's such questions are logged."""
        if self._log_unanswered:
            unanswered.record(self.settings, question)

    def _read(self, prepared: Prepared) -> Reading:
        """The reader's outcome for a prepared question."""
        return self.reader.read(prepared.state, prepared.candidates, prepared.query.vector)


def _compose(state: Version, reading: Reading) -> tuple[str, list[Source]]:
    """The reply text with a `[n]` after each quoted sentence, and its sources in citation order.

    An answer is its sentences in a row; an uncertain reply is `UNCERTAIN`, then one passage per line.
    """
    sources: list[Source] = []
    parts: list[str] = []
    for i, score in reading.picked:
        sent = state.sentences[i]
        doc = state.docs[sent.doc_id]
        n = len(sources) + 1
        page = sent.pages[0] if sent.pages else Page(doc.url, doc.date, doc.title)
        sources.append(Source(n, doc.id, doc.title, page.url, page.date, sent.section, sent.text, sent.start,
                              sent.end, round(score, 4), doc_url=doc.url, page_title=page.title, pages=sent.pages))
        parts.append(f"{sent.text} {cite(n)}")
    if reading.outcome == "uncertain":
        return "\n".join([UNCERTAIN, *(f"- {p}" for p in parts)]), sources
    return " ".join(parts), sources


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
