"""The hand-set answerer that the fitted selector replaces, kept for a side-by-side comparison only.

`partnerbot eval --answerer heuristic` runs it. Its weights and thresholds were set by hand on the
cases that used to gate CI; see README ("Answer selection").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .text import content_stems
from .types import Hit
from .version import Version

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
MIN_DENSE, MIN_LEXICAL, STRONG_DENSE, STRONG_LEXICAL, RARE_WORD, STRICT_DENSE, STRICT_LEXICAL = (
    0.40, 0.30, 0.50, 0.75, 0.75, 0.55, 0.60)


def pick(settings: Any, state: Version, question: str, query: str, qv: np.ndarray,
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
    if not _confident(settings, float(cos[best]), float(lexical[best]), rarest, bool(_STRICT.search(question))):
        return [], evidence
    chosen = [best]
    floor = float(scores[best]) - 0.1
    while len(chosen) < settings.max_sentences:
        sims = state.sentence_vecs[idx] @ state.sentence_vecs[idx[chosen]].T
        mmr = 0.75 * scores - 0.25 * sims.max(axis=1)
        mmr[chosen] = -np.inf
        mmr[sims.max(axis=1) > 0.88] = -np.inf  # near-duplicates of a chosen sentence
        j = int(np.argmax(mmr))
        if not np.isfinite(mmr[j]) or scores[j] < floor or cos[j] < MIN_DENSE:
            break
        chosen.append(j)
    return [(int(idx[j]), float(scores[j])) for j in chosen], evidence

def _confident(settings: Any, cos: float, lexical: float, rarest: float, strict: bool) -> bool:
    """Is the best sentence strong enough evidence, by meaning and by words?

    Words alone suffice only when a rare word matches (a name such as "Albence"), not a
    common one ("created"). Counting questions and first-person how-to questions
    ("How do I ...") need a close match: a loosely related figure or procedure is wrong for them.
    """
    if strict:
        return (cos >= STRICT_DENSE and lexical >= STRICT_LEXICAL) or (
            lexical >= STRONG_LEXICAL and cos >= MIN_DENSE
        )
    return (
        (cos >= MIN_DENSE and lexical >= MIN_LEXICAL)
        or cos >= STRONG_DENSE
        or (lexical >= STRONG_LEXICAL and rarest >= RARE_WORD and cos > 0.0)
    )

def _coverage(state: Version, q_stems: Sequence[str], s_stems: frozenset[str]) -> float:
    """The IDF-weighted share of the question's content stems found in a sentence."""
    if not q_stems:
        return 0.0
    total = sum(state.idf.get(s, state.max_idf) for s in q_stems)
    hit = sum(state.idf.get(s, state.max_idf) for s in q_stems if s in s_stems)
    return hit / total


