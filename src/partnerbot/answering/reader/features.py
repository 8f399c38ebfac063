"""The features of a (question, candidate sentence) pair that the fitted selector scores.

Candidates are the sentences of the retrieved chunks, plus the opening sentence of each retrieved
document. Every feature is a general property of the pair, the sentence or the question, named in
`FEATURES` and documented below; none refers to a document, a program or an evaluation case. The
selector learns how much each one counts (see `selector.py` and `partnerbot tune`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from partnerbot.index.read import IndexSnapshot
from partnerbot.text import FIGURE, MONTH, STOPWORDS, YEAR, content_stems, stem, tokens
from partnerbot.types import Hit

# The answer types a question can ask for, told by its wh-word or phrase.
_ASKS_NUMBER = re.compile(r"\bhow (many|much)\b|\bnumber of\b|\bhow big\b|\bwhat (share|percent|percentage|portion)\b", re.I)
_ASKS_DATE = re.compile(r"\bwhen\b|\bwhat (year|date|month|day)\b|\bwhich year\b|\bhow long (ago|has)\b|\bsince when\b", re.I)
_ASKS_PLACE = re.compile(r"\bwhere\b|\bwhat (city|state|country|place|town)\b|\blocated\b|\bheadquarter", re.I)
_ASKS_PERSON = re.compile(r"\bwho\b|\bwhose\b|\bwhich (person|official|president|director)\b", re.I)
_ASKS_DEFINITION = re.compile(r"^\s*(what|who)('s|\s+(is|are|was|were))\b|^\s*(tell me about|explain|describe|define)\b"
                              r"|\bwhat (does|do) .+ do\b", re.I)
_ASKS_NOW = re.compile(r"\b(right now|these days|at the moment|currently|current|today|nowadays|this year|latest)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(i|my|me|we|our|i'm|im)\b", re.I)
# What a sentence holds (besides figures, years and months: the text toolkit's patterns).
_PLACE = re.compile(r"\b(in|at|near|from|to) (the )?[A-Z][a-z]+")
_PERSON = re.compile(r"\b(Director|Secretary|President|Deputy|Agent|Officer|Senator|Attorney General|Mr|Ms)\b"
                     r"|\b[A-Z][a-z]+ [A-Z]\.? ?[A-Z][a-z]+\b")
_DEFINITION = re.compile(r"^[^.]{0,160}?\b(is|are|was|lets|means)\s+(a|an|the|one|ICE's|HSI's)\b")
_DANGLING = frozenset(["it", "its", "this", "that", "these", "those", "they", "their", "them", "he", "she", "his",
                       "her", "such", "both"])
_COMPLETE = re.compile(r"[.!?][\"'”’)]*\s*$")
_WINDOW = 4  # words either side of a figure that count as describing it
# What a counting question counts: the words after "how many", "number of", "what share of" ...
_COUNTED = re.compile(r"\b(?:how many|how much|number of|(?:what|which) (?:share|percent|percentage|portion) of)\s+"
                      r"((?:[A-Za-z'-]+\s*){1,3})", re.I)

FEATURES = (
    "dense", "dense_gap", "lexical", "lexical_gap", "lexical_context", "rarest_match", "focus_coverage",
    "unknown_terms", "topic_match", "section_match", "chunk_rank", "doc_lead", "section_first", "length",
    "fragment", "has_url", "dangling", "asks_number_has_figure", "asks_number_no_figure", "figure_term_match",
    "asks_date_has_date", "asks_date_no_date", "asks_place_has_place", "asks_person_has_person",
    "asks_definition_is_definition", "year_match", "year_conflict", "asks_now", "first_person",
    "counted_near_figure",
)


@dataclass(frozen=True)
class Query:
    """A normalised question, the retrieval query it became, and its embedding."""

    question: str
    retrieval_query: str  # the question, with an earlier turn's topic for a follow-up (`conversation`)
    vector: np.ndarray  # the retrieval query's embedding
    # False for a question whose topic is only a pronoun ("When were they created?") and that has no earlier
    # turn to take its topic from: nothing can answer it with confidence.
    topical: bool = True


@dataclass(frozen=True)
class Candidates:
    """The candidate sentences for one query, with their feature matrix (rows follow `sentences`)."""

    sentences: tuple[int, ...]
    matrix: np.ndarray


def candidate_sentences(state: IndexSnapshot, hits: Sequence[Hit]) -> dict[int, int]:
    """Sentence index -> rank of the best retrieved chunk holding it (documents' opening sentences included)."""
    ranks: dict[int, int] = {}
    for rank, hit in enumerate(hits):
        for i in state.sentences_in(hit.chunk):
            ranks.setdefault(i, rank)
        ranks.setdefault(state.lead_of[hit.chunk.doc_id], rank)
    return ranks


def _coverage(state: IndexSnapshot, stems: Sequence[str], found: frozenset[str] | set[str]) -> float:
    """The IDF-weighted share of `stems` (those the corpus knows) found in `found`."""
    known = [s for s in stems if s in state.idf]
    total = sum(state.idf[s] for s in known)
    return sum(state.idf[s] for s in known if s in found) / total if total else 0.0


def _near_figures(text: str) -> set[str]:
    """Stems within a few words of a figure (a count, amount or share; not a year) in `text`."""
    words = tokens(text)
    near: set[str] = set()
    for i, w in enumerate(words):
        if (w[0].isdigit() and not YEAR.fullmatch(w)) or w == "percent":
            near.update(stem(x) for x in words[max(0, i - _WINDOW) : i + _WINDOW + 1])
    return near


def _figure_term_match(near: set[str], stems: Sequence[str]) -> float:
    """The share of the question's words that stand within a few words of a figure (`near`) in the sentence.

    "How many removals" should meet the figure that "removals" describes, not a neighbouring one.
    """
    return sum(1 for s in stems if s in near) / len(stems) if stems else 0.0


def counted_stems(question: str) -> list[str]:
    """What a counting question counts ("how many removals did ..." -> ["remov"]); empty otherwise."""
    m = _COUNTED.search(question)
    if not m:
        return []
    words: list[str] = []
    for w in tokens(m.group(1)):
        if w in STOPWORDS:  # the counted phrase ends at its verb or preposition
            break
        words.append(stem(w))
    return words[:2]


def featurize(state: IndexSnapshot, query: Query, hits: Sequence[Hit], sentence_vecs: np.ndarray | None = None) -> Candidates:
    """The candidates for `query` and their features, in `FEATURES` order.

    Args:
        state: the loaded index version.
        query: the normalised question, its retrieval query and embedding.
        hits: the retrieved chunks, best first.
        sentence_vecs: every sentence's vector from another model than the index's, whose question vector
            `query.vector` then is (`partnerbot tune` scores held-out questions with a model that never saw them).
    """
    ranks = candidate_sentences(state, hits)
    if not ranks:
        return Candidates((), np.zeros((0, len(FEATURES)), dtype=np.float32))
    idx = np.fromiter(ranks, dtype=np.int64)
    dense = (state.sentence_vecs if sentence_vecs is None else sentence_vecs)[idx] @ query.vector
    q_stems = content_stems(query.question)
    ctx_stems = content_stems(query.retrieval_query)
    focus = sorted((s for s in q_stems if s in state.idf), key=lambda s: -state.idf[s])[:2]
    q_years = set(YEAR.findall(query.question))
    asks = {
        "number": bool(_ASKS_NUMBER.search(query.question)),
        "date": bool(_ASKS_DATE.search(query.question)),
        "place": bool(_ASKS_PLACE.search(query.question)),
        "person": bool(_ASKS_PERSON.search(query.question)),
        "definition": bool(_ASKS_DEFINITION.search(query.question)),
    }
    counted = counted_stems(query.question)
    unknown = sum(1 for s in q_stems if s not in state.idf) / len(q_stems) if q_stems else 0.0
    asks_now = float(bool(_ASKS_NOW.search(query.question)))
    first_person = float(bool(_FIRST_PERSON.search(query.question)))
    rows = []
    lexical = np.array([_coverage(state, q_stems, state.sentence_stems[i]) for i in idx], dtype=np.float32)

    for j, i in enumerate(idx):
        sent = state.sentences[int(i)]
        doc = state.docs[sent.doc_id]
        text = sent.text
        stems = state.sentence_stems[int(i)]
        words = text.split()
        first = words[0].lower().strip("\"'“(") if words else ""
        has_figure = bool(FIGURE.search(YEAR.sub(" ", text)))
        has_date = bool(YEAR.search(text) or MONTH.search(text))
        years_here = set(YEAR.findall(text)) | {doc.date[:4]}
        near = _near_figures(text) if asks["number"] or counted else set()
        values = {
            # Meaning: cosine similarity of the retrieval query to the sentence in its context (title and
            # section, see `chunk.sentence_context`), and how far below the best candidate.
            "dense": float(dense[j]),
            "dense_gap": float(dense[j] - dense.max()),
            # Words: IDF-weighted share of the question's words in the sentence, and the gap to the best.
            "lexical": float(lexical[j]),
            "lexical_gap": float(lexical[j] - lexical.max()),
            # The same share for the retrieval query, which carries a follow-up's earlier topic.
            "lexical_context": _coverage(state, ctx_stems, stems),
            # The rarest question word matched, as a share of the rarest possible (a name, an acronym).
            "rarest_match": max((state.idf[s] for s in q_stems if s in stems and s in state.idf), default=0.0)
            / state.max_idf,
            # Whether the question's two rarest words are both in the sentence.
            "focus_coverage": sum(1 for s in focus if s in stems) / len(focus) if focus else 0.0,
            # The share of the question's words the corpus never uses (off-topic words, or untreated typos).
            "unknown_terms": unknown,
            # The question's words in the document's title (its program) and in the section heading.
            "topic_match": _coverage(state, ctx_stems, set(content_stems(doc.title)) | stems),
            "section_match": _coverage(state, q_stems, set(content_stems(sent.section))),
            # Retrieval rank of the best chunk that holds the sentence (1 = first).
            "chunk_rank": 1.0 / (1 + ranks[int(i)]),
            # Position: a document's opening sentence (its definition) and a section's first sentence.
            "doc_lead": float(int(i) in state.leads),
            "section_first": float(int(i) == 0 or state.sentences[int(i) - 1].section != sent.section
                                   or state.sentences[int(i) - 1].doc_id != sent.doc_id),
            # Shape: length, fragments (no closing stop, a trailing colon), addresses, a leading pronoun.
            "length": math.log1p(len(words)),
            "fragment": float(not _COMPLETE.search(text) or text.rstrip().endswith(":")),
            "has_url": float("http" in text),
            "dangling": float(first in _DANGLING),
            # Answer type: the question asks for a number, date, place, person or definition, and the sentence
            # holds one (or not).
            "asks_number_has_figure": float(asks["number"] and has_figure),
            "asks_number_no_figure": float(asks["number"] and not has_figure),
            "figure_term_match": _figure_term_match(near, q_stems) if asks["number"] else 0.0,
            "asks_date_has_date": float(asks["date"] and has_date),
            "asks_date_no_date": float(asks["date"] and not has_date),
            "asks_place_has_place": float(asks["place"] and bool(_PLACE.search(text))),
            "asks_person_has_person": float(asks["person"] and bool(_PERSON.search(text))),
            "asks_definition_is_definition": float(asks["definition"] and (int(i) in state.leads
                                                                           or bool(_DEFINITION.match(text)))),
            # A year named in the question: is it in the sentence (or its document's date), or not?
            "year_match": float(bool(q_years) and bool(q_years & years_here)),
            "year_conflict": float(bool(q_years) and not q_years & years_here),
            # Question-level: it asks about the present, or about the asker's own situation.
            "asks_now": asks_now,
            "first_person": first_person,
            # A counting question's counted thing stands next to a figure in the sentence ("removals" by
            # "185,884"), not merely somewhere in it beside a neighbouring figure.
            "counted_near_figure": float(any(s in near for s in counted)),
        }
        rows.append([values[name] for name in FEATURES])
    return Candidates(tuple(int(i) for i in idx), np.asarray(rows, dtype=np.float32))
