"""Query normalisation and language identification, on real strings and the real corpus."""

from __future__ import annotations

import pytest

from conftest import ROOT
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.language import REPLIES, english_share, foreign_reply
from partnerbot.corpus.parse import load_corpus
from partnerbot.corpus.vocabulary import Normalizer
from partnerbot.phrases import EXAMPLE_QUESTIONS, REFUSAL


@pytest.fixture(scope="module")
def normal() -> Normalizer:
    docs = load_corpus(ROOT / "corpus")
    return Normalizer([d.text for d in docs] + [d.title for d in docs])


@pytest.mark.parametrize(("raw", "expected"), [
    ("wat is 287g", "wat is 287(g)"),
    ("what is the 287 g program", "what is the 287(g) program"),
    ("287-G agreements", "287(g) agreements"),
    ("how meny peple did ero deport", "how many people did ERO deport"),
    ("who is albence", "who is Albence"),
    ("what does hsi do", "what does HSI do"),
    ("what is teh ipr center", "what is the IPR center"),
])
def test_normalisation_on_real_questions(normal: Normalizer, raw: str, expected: str) -> None:
    assert normal(raw) == expected


def test_everyday_words_are_not_recased_or_corrected(normal: Normalizer) -> None:
    # "best" and "hero" are program names in the corpus, but also ordinary English words.
    assert normal("what is the best way to report a hero") == "what is the best way to report a hero"
    assert normal("Tesla stock price") == "Tesla stock price"  # a word outside the corpus is left alone
    assert normal("287") == "287"  # a bare number is not a section reference


def test_section_references_come_from_the_corpus(normal: Normalizer) -> None:
    other = Normalizer(["Section 101(a) of the Act."])
    assert other("what does 101a say about 287g") == "what does 101(a) say about 287g"
    assert normal("what does 101a say") == "what does 101a say"


@pytest.mark.parametrize(("question", "code"), [
    ("¿Qué es el programa 287(g)?", "es"),
    ("¿Cuántas personas deportó ICE en 2020?", "es"),
    ("Qu'est-ce que le programme 287(g) ?", "fr"),
    ("Como posso denunciar produtos falsificados?", "pt"),
    ("Wer leitet die ICE?", "de"),
    ("ICE 是什么", "zh"),
    ("Chương trình 287(g) là gì?", "vi"),
    ("Что такое HSI?", "ru"),
])
def test_other_languages_are_told_apart(question: str, code: str) -> None:
    reply = foreign_reply(question, {"ice", "hsi"})
    assert reply is not None and reply.code == code


@pytest.mark.parametrize("question", [
    "wat is 287g", "how meny lookouts", "hero corps", "jaime zapata", "Albence", "ero hsi ope",
    "las task forces de best", "hey wat do they do", "What is the 287(g) program?",
])
def test_english_with_typos_and_names_stays_english(normal: Normalizer, question: str) -> None:
    assert foreign_reply(question, normal.vocabulary) is None


def test_english_share_counts_corpus_words() -> None:
    assert english_share("albence zapata", {"albence", "zapata"}) == 1.0
    assert english_share("albence zapata") == 0.0
    assert english_share("1234 !!") == 1.0  # no words: nothing to tell


def test_every_reply_points_to_an_english_example() -> None:
    for reply in REPLIES.values():
        assert f'"{EXAMPLE_QUESTIONS[0]}"' in reply.text and len(reply.code) == 2


def test_assistant_replies_in_the_question_language(assistant: Assistant) -> None:
    answer = assistant.ask("¿Qué hace el Centro de Delitos Cibernéticos?")
    assert answer.refused and answer.language == "es" and answer.sources == ()
    assert answer.text == REPLIES["SPANISH"].text and answer.text != REFUSAL
    english = assistant.ask("When was the Cyber Crimes Center established?")
    assert english.language == "en" and not english.refused


@pytest.mark.parametrize(("typed", "plain"), [
    ("What is the ２８７（ｇ） program?", "What is the 287(g) program?"),  # full-width forms
    ("２８７（ｇ）", "287(g)"),  # once declined, while "287(g)" was not
    ("How many ２８７ｇ agreements are there?", "How many 287g agreements are there?"),
    ("What does ＨＥＲＯ Ｃｏｒｐｓ do?", "What does HERO Corps do?"),
    ("What is the ﬁrst BEST?", "What is the first BEST?"),  # a ligature
])
def test_compatibility_forms_match_as_their_plain_spelling_and_show_as_typed(assistant: Assistant, typed: str,
                                                                           plain: str) -> None:
    from partnerbot.sanitize import fold

    assert fold(typed) == plain
    got, want = assistant.ask(typed), assistant.ask(plain)
    assert (got.outcome, got.text, got.sources) == (want.outcome, want.text, want.sources)
    assert got.question == typed  # what was typed is what is shown
