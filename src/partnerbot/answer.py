"""The extractive answerer: `Assistant.ask` picks cited sentences from retrieved chunks, or refuses."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import store
from .embed import embed_query
from .errors import IndexNotBuiltError, InputError, StoreUnavailableError
from .phrases import REFUSAL, UNAVAILABLE, cite
from .retrieve import Version, load_version, retrieve
from .settings import Settings
from .text import PRONOUNS, STOPWORDS, content_stems, tokens
from .types import Answer, Hit, Source

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_MARKUP = re.compile(r"<(script|style)\b.*?(</\1\s*>|$)|<!--.*?(-->|$)|</?[A-Za-z][^<>]*>", re.I | re.S)
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"\d")
_DANGLING = frozenset(["it", "its", "this", "that", "these", "those", "they", "their", "them", "he", "she", "his", "her", "such", "both"])
_WHEN = re.compile(r"^\s*(when|what year|which year|since when|how long ago)\b|\bwhat (year|date)\b", re.I)
_HOW_MANY = re.compile(r"\bhow (many|much)\b|\bnumber of\b|\bhow big\b", re.I)
_DEFINE = re.compile(
    r"^\s*(what|who)\s+(is|are|was|were)\b(?!.*\b(called|named|known as|now)\b)"
    r"|^\s*(tell me about|explain|describe|define|what does .+ do|what do .+ do)",
    re.I,
)
_WHERE = re.compile(r"^\s*where\b|\bwhat (city|state|country|place)\b|\blocated\b|\bheadquarter", re.I)
_PLACE = re.compile(r"\b(in|at|near) (the )?[A-Z][a-z]+")
_STRICT = re.compile(r"\bhow (many|much)\b|^\s*(how|where|what|when) (do|can|should|could|would) (i|we)\b|^\s*can (i|we)\b", re.I)
_NOW = re.compile(r"\b(right now|these days|at the moment|currently|today|nowadays)\b", re.I)
_WEB = re.compile(r"\b(web ?site|web page|webpage|url|link|learn more|more information|online)\b", re.I)
_DEFINITION = re.compile(r"^[^.]{0,160}?\b(is|are|lets|was)\s+(a|an|the|one)\b")
_COMPLETE = re.compile(r"[.!?][\"'”’)]*\s*$")
HISTORY_TURNS = 6


def clean_question(question: str, limit: int) -> str:
    """Strip control characters and markup (tags, script and style blocks); collapse whitespace.

    Raises:
        InputError: the question is empty or longer than `limit` characters.
    """
    if not isinstance(question, str):
        raise InputError("the question must be text")
    if len(question) > limit * 4:  # far over the limit: refuse before doing any work on it
        raise InputError(f"the question is too long ({len(question):,} characters; the limit is {limit:,})")
    text = " ".join(_MARKUP.sub(" ", _CONTROL.sub(" ", question)).split())
    if not text:
        raise InputError("the question is empty: type a question about the ICE partnership programs")
    if len(text) > limit:
        raise InputError(f"the question is too long ({len(text):,} characters; the limit is {limit:,})")
    return text


def clean_history(history: Any, limit: int) -> list[str]:
    """The usable earlier user turns: strings only, cleaned, the last few kept."""
    if not isinstance(history, (list, tuple)):
        return []
    out = []
    for turn in history[-HISTORY_TURNS:]:
        if isinstance(turn, str):
            text = " ".join(_CONTROL.sub(" ", turn[: limit * 4]).split())[:limit]
            if text:
                out.append(text)
    return out


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


class Assistant:
    """Answers questions from the active index version; reloads when the version switches."""

    def __init__(self, settings: Settings, pointer_check_seconds: float = 1.0, version: str | None = None):
        """`version` pins one index version (the eval gate); by default the active one is followed."""
        self.settings = settings
        self._pinned = version
        self._lock = threading.Lock()
        self._client: Any = None
        self._state: Version | None = None
        self._checked = 0.0
        self._interval = pointer_check_seconds

    # -- version management -------------------------------------------------------------
    def _current(self) -> Version:
        now = time.monotonic()
        state = self._state
        if state is not None and now - self._checked < self._interval:
            return state
        with self._lock:
            try:
                if self._client is None:
                    self._client = store.connect(self.settings)
                version = self._pinned or store.read_pointer(self._client).version
            except StoreUnavailableError:
                self._client = None
                raise
            if self._state is None or self._state.version != version:
                self._state = load_version(self._client, self.settings, version)
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
    def ask(self, question: str, history: Sequence[str] = ()) -> Answer:
        """Answer `question` from the corpus, using `history` (earlier user turns) for follow-ups.

        Raises:
            InputError: the question is empty or too long.
            IndexNotBuiltError / IndexMismatchError: no usable index.
        """
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        turns = clean_history(history, self.settings.max_question_chars)
        try:
            state = self._current()
            t1 = time.perf_counter()
            query = contextual_query(q, turns)
            qv = embed_query(self.settings, query)
            t2 = time.perf_counter()
            hits = retrieve(state, state.expand(query), qv, self.settings.retriever, self.settings.top_k)
        except StoreUnavailableError:
            with self._lock:  # reconnect and reload on the next question
                self._client, self._state, self._checked = None, None, 0.0
            return Answer(q, UNAVAILABLE, (), True, {"total": _ms(t0)}, unavailable=True)
        t3 = time.perf_counter()
        picked, evidence = self._pick(state, q, query, qv, hits)
        text, sources = _compose(state, picked)
        t4 = time.perf_counter()
        timings = {"load": (t1 - t0) * 1000, "embed": (t2 - t1) * 1000, "retrieve": (t3 - t2) * 1000,
                   "compose": (t4 - t3) * 1000, "total": (t4 - t0) * 1000}
        doc_ids = tuple(dict.fromkeys(h.chunk.doc_id for h in hits))
        if not sources:
            return Answer(q, REFUSAL, (), True, timings, doc_ids, state.version, evidence=evidence)
        return Answer(q, text, tuple(sources), False, timings, doc_ids, state.version, evidence=evidence)

    def _pick(self, state: Version, question: str, query: str, qv: np.ndarray,
              hits: list[Hit]) -> tuple[list[tuple[int, float]], dict[str, float]]:
        """Choose up to `max_sentences` (sentence index, score) and report the evidence; none means refuse."""
        if not hits:
            return [], {}
        q_stems = content_stems(_NOW.sub(" ", question))
        query_stems = content_stems(_NOW.sub(" ", query))
        defining = bool(_DEFINE.search(question))
        cand: dict[int, float] = {}
        for rank, hit in enumerate(hits):
            weight = 1.0 - rank / max(len(hits), 1)
            for i in state.sentences_in(hit.chunk):
                cand.setdefault(i, weight)
            if defining:  # a "what is" question may want the document's opening definition
                cand.setdefault(state.lead_of[hit.chunk.doc_id], weight)
        if not cand:
            return [], {}
        idx = np.fromiter(cand, dtype=np.int64)
        cos = state.sentence_vecs[idx] @ qv
        wants_year = bool(_WHEN.search(question))
        wants_number = bool(_HOW_MANY.search(question))
        wants_place = bool(_WHERE.search(question))
        wants_web = bool(_WEB.search(question))
        q_years = set(_YEAR.findall(question))
        scores = np.empty(len(idx), dtype=np.float32)
        lexical = np.empty(len(idx), dtype=np.float32)
        for j, i in enumerate(idx):
            sent = state.sentences[i]
            # The query is the question itself, or it plus the earlier turn that gives a follow-up its topic.
            lex = lexical[j] = _coverage(state, query_stems, state.sentence_stems[i])
            score = 0.55 * float(cos[j]) + 0.35 * lex + 0.06 * cand[int(i)]
            words = sent.text.split()
            first = words[0].lower().strip("\"'“(") if words else ""
            if first in _DANGLING:
                score -= 0.06
            if len(words) < 6:
                score -= 0.2
            if sent.text.rstrip().endswith(":"):
                score -= 0.1
            elif not _COMPLETE.search(sent.text):  # a fragment: a dateline, a list item cut short
                score -= 0.15
            if "http" in sent.text and not wants_web:
                score -= 0.25
            if wants_year and _YEAR.search(sent.text):
                score += 0.06
            if wants_number and _NUMBER.search(sent.text):
                score += 0.05
            if wants_place and _PLACE.search(sent.text):
                score += 0.05
            if defining:
                score += 0.1 if int(i) in state.leads else 0.04 if _DEFINITION.match(sent.text) else 0.0
            scores[j] = score
        if q_years:  # a question about a given year: only sentences naming it, or from a document dated then
            def names_year(i: int) -> bool:
                sent = state.sentences[i]
                return any(y in sent.text or state.docs[sent.doc_id].date.startswith(y) for y in q_years)

            scores[[not names_year(int(i)) for i in idx]] = -np.inf
            if not np.isfinite(scores).any():
                return [], {}
        best = int(np.argmax(scores))
        matched = [state.idf.get(t, state.max_idf) for t in q_stems if t in state.sentence_stems[int(idx[best])]]
        rarest = max(matched, default=0.0) / state.max_idf
        best_text = state.sentences[int(idx[best])].text
        if any(re.search(rf"\b{re.escape(a)}\b", best_text, re.I) for a in state.acronyms_in(question)):
            rarest = 1.0  # a program's own acronym ("BEST") identifies the topic as well as a rare word
        evidence = {"cos": round(float(cos[best]), 4), "lexical": round(float(lexical[best]), 4),
                    "rarest": round(rarest, 4), "score": round(float(scores[best]), 4)}
        if not self._confident(float(cos[best]), float(lexical[best]), rarest, bool(_STRICT.search(question))):
            return [], evidence
        chosen = [best]
        floor = float(scores[best]) - 0.1
        while len(chosen) < self.settings.max_sentences:
            sims = state.sentence_vecs[idx] @ state.sentence_vecs[idx[chosen]].T
            mmr = 0.75 * scores - 0.25 * sims.max(axis=1)
            mmr[chosen] = -np.inf
            mmr[sims.max(axis=1) > 0.88] = -np.inf  # near-duplicates of a chosen sentence
            j = int(np.argmax(mmr))
            if not np.isfinite(mmr[j]) or scores[j] < floor or cos[j] < self.settings.min_dense:
                break
            chosen.append(j)
        return [(int(idx[j]), float(scores[j])) for j in chosen], evidence

    def _confident(self, cos: float, lexical: float, rarest: float, strict: bool) -> bool:
        """Is the best sentence strong enough evidence, by meaning and by words?

        Words alone suffice only when a rare word matches (a name such as "Albence"), not a
        common one ("created"). Counting questions and first-person how-to questions
        ("How do I ...") need a close match: a loosely related figure or procedure is wrong for them.
        """
        s = self.settings
        if strict:
            return (cos >= s.strict_dense and lexical >= s.strict_lexical) or (
                lexical >= s.strong_lexical and cos >= s.min_dense
            )
        return (
            (cos >= s.min_dense and lexical >= s.min_lexical)
            or cos >= s.strong_dense
            or (lexical >= s.strong_lexical and rarest >= s.rare_word and cos > 0.0)
        )


def _coverage(state: Version, q_stems: Sequence[str], s_stems: frozenset[str]) -> float:
    """The IDF-weighted share of the question's content stems found in a sentence."""
    if not q_stems:
        return 0.0
    total = sum(state.idf.get(s, state.max_idf) for s in q_stems)
    hit = sum(state.idf.get(s, state.max_idf) for s in q_stems if s in s_stems)
    return hit / total


def _compose(state: Version, picked: list[tuple[int, float]]) -> tuple[str, list[Source]]:
    """The answer text with a `[n]` after each sentence, and its sources in citation order."""
    sources: list[Source] = []
    parts: list[str] = []
    for i, score in picked:
        sent = state.sentences[i]
        doc = state.docs[sent.doc_id]
        n = len(sources) + 1
        sources.append(Source(n, doc.id, doc.title, doc.url, doc.date, sent.section, sent.text, sent.start,
                              sent.end, round(score, 4)))
        parts.append(f"{sent.text} {cite(n)}")
    return " ".join(parts), sources


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
