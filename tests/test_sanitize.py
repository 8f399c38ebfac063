"""The edge: the one cleaning of user text, language detection on the question's own words, and a batcher
that lets one bad question fail alone. The cleaner and the detector are pure; the batcher runs the real model."""

from __future__ import annotations

import re
import threading
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerbot.answering.language import foreign_reply, own_words
from partnerbot.corpus.vocabulary import fold_accents
from partnerbot.errors import InputError
from partnerbot.index.embed import QueryBatcher, embed_queries
from partnerbot.sanitize import clean_history, clean_question, clean_text
from partnerbot.settings import Settings
from partnerbot.text import scrub

LIMIT = 1000


@pytest.mark.parametrize(("raw", "clean"), [
    ("What is <HERO Corps>?", "What is <HERO Corps>?"),  # not an HTML tag: the words stay
    ("Is 287(g) < 100 agreements and > 50?", "Is 287(g) < 100 agreements and > 50?"),
    ("a<b", "a<b"),
    ("What is <b>HERO</b> Corps?", "What is HERO Corps?"),
    ("<script>alert(1)</script>What is BEST?", "What is BEST?"),
    ("<style>p{}</style><!-- hidden -->What is BEST?", "What is BEST?"),
    ('<img src=x onerror="alert(1)">What is BEST?', "What is BEST?"),
    ("<<b>b>What is BEST?", "What is BEST?"),  # nesting cannot smuggle a tag through
    ("AT&T &amp; &lt;b&gt;", "AT&T &amp; &lt;b&gt;"),  # entities are text as typed
    ("# What is ERO?", "What is ERO?"),
    ("> * What is ERO?\n- When was it created?\n## And HSI?", "What is ERO? When was it created? And HSI?"),
    ("-5 degrees", "-5 degrees"),  # a minus sign is not a list bullet
    ("What is\x00 HERO\x07 Corps?\x1b", "What is HERO Corps?"),
    ("HE\u200bRO\u202e Corps\ufeff", "HERO Corps"),  # format characters go without splitting the word
    ("What is HERO Corps? \ud83d", "What is HERO Corps? \ufffd"),  # a lone surrogate
    ("\ud83d\ude00 What is BEST?", "\U0001F600 What is BEST?"),  # a pair split in two is joined again
    ("Secretari\u0301a", "Secretaría"),  # NFC
    ("  many\t\tspaces\r\n\r\nand lines  ", "many spaces and lines"),
])
def test_cleaning_keeps_words_and_drops_markup(raw: str, clean: str) -> None:
    assert clean_question(raw, LIMIT) == clean


def test_errors_name_the_field() -> None:
    for bad, words in (("   ", "empty"), ("<p></p>", "empty"), ("x" * 1001, "too long"), ("x" * 5000, "too long"),
                       (42, "must be text")):
        with pytest.raises(InputError, match=words) as caught:
            clean_question(bad, LIMIT)
        assert caught.value.field == "question"
    with pytest.raises(InputError) as caught:
        clean_text(None, "messages[2].content[1].text", LIMIT)
    assert caught.value.field == "messages[2].content[1].text"


def test_history_keeps_the_last_usable_turns_cleaned() -> None:
    turns = ["old"] * 10 + ["<b>What is BEST?</b>", 7, "   ", "\ud800 HSI", "x" * 5000]
    assert clean_history(turns, LIMIT) == ["old", "What is BEST?", "\ufffd HSI", "x" * LIMIT]  # of the last six
    assert clean_history("not a list", LIMIT) == []


ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)  # every code point, surrogates too
MARKUP = st.lists(st.sampled_from(["<", ">", "b", "/", "script", "!--", "-->", "&", "amp;", "#", "*", " ", "\n", "x",
                                   "\ud83d", "\x00", "=", '"', "p", "img src=x"]), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(ANY_TEXT, MARKUP))
def test_clean_text_is_encodable_control_free_and_idempotent(raw: str) -> None:
    try:
        text = clean_text(raw, "question", LIMIT)
    except InputError as exc:
        assert exc.field == "question" and "too long" in str(exc)
        return
    text.encode("utf-8")  # never raises: no surrogate survives
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text)
    assert text == text.strip() and "  " not in text
    assert clean_text(text, "question", LIMIT) == text  # a second cleaning changes nothing
    assert re.search(r"<(script|style|img|iframe|a|b|p)(\s[^<>]*)?/?>", text, re.I) is None  # no tag survives


@given(ANY_TEXT)
def test_scrub_only_replaces_what_utf8_cannot_encode(raw: str) -> None:
    out = scrub(raw)
    out.encode("utf-8")
    if raw.encode("utf-8", "surrogatepass") == out.encode("utf-8", "surrogatepass"):
        assert out == raw


@pytest.mark.parametrize("question", [
    "Which Mexican agency took part in BEST (Secretaría de Seguridad Pública)?",
    "Did the Procuraduría General de la República work with BEST?",
    'What does "Policía Federal de México" do with BEST?',
    "What did José Antonio Zapata Muñoz do at HSI?",
])
def test_names_quotes_and_acronyms_do_not_make_a_question_foreign(question: str) -> None:
    assert foreign_reply(question) is None
    assert "Secretaría" not in own_words(question) and "BEST" not in own_words(question)


@pytest.mark.parametrize(("question", "code"), [
    ("¿Qué hace el Centro de Delitos Cibernéticos?", "es"),  # the name goes; "qué hace el" is still Spanish
    ("¿Cuándo se creó el programa de HERO Corps?", "es"),
    ("Wer leitet die Abteilung von ICE?", "de"),
])
def test_a_foreign_question_naming_things_is_still_foreign(question: str, code: str) -> None:
    reply = foreign_reply(question)
    assert reply is not None and reply.code == code


def test_accents_on_latin_letters_are_folded_for_matching_and_other_scripts_kept() -> None:
    assert fold_accents("Secretaría de Seguridad Pública, Peña, ﬁ") == "Secretaria de Seguridad Publica, Pena, fi"
    assert fold_accents("Что такое HSI? 是什么 ß") == "Что такое HSI? 是什么 ß"


class Poisoned(Exception):
    pass


def test_one_question_that_cannot_be_embedded_fails_alone_and_is_never_retried(model: object) -> None:
    settings = Settings()
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if any("POISON" in t for t in texts):
            raise Poisoned("cannot embed")
        return embed_queries(settings, texts)

    batcher = QueryBatcher(encode, max_batch=8, wait_ms=300)  # a wide window: all five share a batch
    questions = ["What is HERO Corps?", "What is BEST?", "POISON", "Who leads HSI?", "What is 287(g)?"]
    results: dict[str, object] = {}

    def one(q: str) -> None:
        try:
            results[q] = batcher.embed(q)
        except Poisoned as exc:
            results[q] = exc

    threads = [threading.Thread(target=one, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(results["POISON"], Poisoned)
    assert calls[0] == questions or sorted(calls[0]) == sorted(questions)  # one batch, then each alone, once
    assert sorted(map(tuple, calls[1:])) == sorted((q,) for q in questions)
    for q in questions:
        if q != "POISON":
            vector = results[q]
            assert isinstance(vector, np.ndarray)
            # its own vector, as if embedded alone: no other question in the batch moves it
            assert float(np.abs(vector - embed_queries(settings, [q])[0]).max()) < 1e-5
    assert isinstance(batcher.embed("What is HERO Corps?"), np.ndarray)  # the worker lives on
