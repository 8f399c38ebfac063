"""Questions not in English: tell the language with lingua's offline models and reply in it.

partnerbot's sources are in English and it answers in English. A question in another language
gets, in that language, a short message saying so and an example question, never a silent
English refusal. A question counts as English when most of its words are English or corpus words:
lingua alone is unreliable on a handful of words ("wat is 287g" reads as Afrikaans).

Only the question's own words are judged (`own_words`): proper names, quoted phrases and acronyms say
nothing of the language it is asked in, so an English question naming "Secretaría de Seguridad Pública"
is English.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container
from dataclasses import dataclass

from partnerbot.corpus.vocabulary import english_words
from partnerbot.phrases import EXAMPLE_QUESTIONS

# Words of two letters or more; in scripts written without spaces, each character is a word.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W\d_\u3040-\u30ff\u3400-\u9fff]{2,}")
# A quoted phrase, in straight, curly, low or angle quotes (an apostrophe inside a word is not a quote).
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|‹[^›]*›|(?<!\w)'[^']+'(?!\w)")
# Any word, with its apostrophes and hyphens, and the end of a sentence.
_TOKEN = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?|[.!?¿¡]")
# Short lower-case words that join the parts of a name ("Secretaría de Seguridad Pública", "Bank of America").
_NAME_JOINERS = frozenset(["de", "del", "della", "der", "des", "di", "do", "dos", "da", "das", "du", "la", "le", "les", "los", "las", "el", "van", "von", "y", "e", "of", "and", "the", "for", "on", "in", "al"])
# lingua's confidence in the top language, and its lead over English, before a reply leaves English.
MIN_CONFIDENCE = 0.25
MIN_LEAD = 0.15
# At or above this share of English or corpus words, a question is English whatever lingua says.
ENGLISH_SHARE = 0.75
# Words at least this common in English count as English words.
ENGLISH_RANK = 20_000


@dataclass(frozen=True)
class Reply:
    """The message for one language: its ISO 639-1 code and text."""

    code: str
    text: str


# Each message: partnerbot answers in English from English sources, with one example question.
_TEMPLATES = {
    "SPANISH": Reply("es", "Solo puedo responder en inglés, a partir de fuentes en inglés sobre los programas de "
                           "colaboración de ICE. Por ejemplo, pregunte: \"{example}\""),
    "FRENCH": Reply("fr", "Je ne peux répondre qu'en anglais, à partir de sources en anglais sur les programmes de "
                          "partenariat de l'ICE. Par exemple, demandez : \"{example}\""),
    "PORTUGUESE": Reply("pt", "Só posso responder em inglês, com base em fontes em inglês sobre os programas de "
                              "parceria do ICE. Por exemplo, pergunte: \"{example}\""),
    "GERMAN": Reply("de", "Ich kann nur auf Englisch antworten, anhand englischer Quellen zu den "
                          "Partnerschaftsprogrammen von ICE. Fragen Sie zum Beispiel: \"{example}\""),
    "ITALIAN": Reply("it", "Posso rispondere solo in inglese, sulla base di fonti in inglese sui programmi di "
                           "partenariato dell'ICE. Ad esempio, chieda: \"{example}\""),
    "CHINESE": Reply("zh", "我只能用英语回答，依据的是关于 ICE 合作项目的英文资料。例如，您可以问：\"{example}\""),
    "VIETNAMESE": Reply("vi", "Tôi chỉ có thể trả lời bằng tiếng Anh, dựa trên các nguồn tiếng Anh về các chương trình "
                              "hợp tác của ICE. Ví dụ, hãy hỏi: \"{example}\""),
    "KOREAN": Reply("ko", "저는 ICE 협력 프로그램에 관한 영어 자료를 바탕으로 영어로만 답변할 수 있습니다. "
                          "예를 들어 이렇게 질문해 보세요: \"{example}\""),
    "ARABIC": Reply("ar", "لا يمكنني الإجابة إلا باللغة الإنجليزية، استنادًا إلى مصادر إنجليزية عن برامج الشراكة "
                          "في وكالة ICE. على سبيل المثال، اسأل: \"{example}\""),
    "RUSSIAN": Reply("ru", "Я могу отвечать только на английском языке, по английским источникам о программах "
                           "партнёрства ICE. Например, спросите: \"{example}\""),
    "TAGALOG": Reply("tl", "Sa Ingles lamang ako makakasagot, batay sa mga sanggunian sa Ingles tungkol sa mga "
                           "programa ng pakikipagtulungan ng ICE. Halimbawa, itanong: \"{example}\""),
    "JAPANESE": Reply("ja", "ICE の連携プログラムに関する英語の資料に基づき、英語でのみお答えできます。"
                            "例えば次のように質問してください: \"{example}\""),
}


REPLIES = {name: Reply(r.code, r.text.format(example=EXAMPLE_QUESTIONS[0])) for name, r in _TEMPLATES.items()}


@functools.lru_cache(maxsize=1)
def _detector():  # type: ignore[no-untyped-def]
    from lingua import Language, LanguageDetectorBuilder

    languages = [Language.ENGLISH, *(getattr(Language, name) for name in REPLIES)]
    return LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()


def own_words(text: str) -> str:
    """The words of `text` that are the asker's own: without quoted phrases, acronyms and proper names.

    A proper name is a capitalised word that does not start a sentence, with the short joining words
    ("de", "of") between two of them. Scripts without capitals keep every word. With nothing left, the
    whole text is the asker's own (a question that is only a name is judged as written).
    """
    unquoted = _QUOTED.sub(" . ", text)
    tokens = _TOKEN.findall(unquoted)
    named = [False] * len(tokens)
    start = True
    for i, tok in enumerate(tokens):
        if tok in ".!?¿¡":
            start = True
            continue
        upper = sum(c.isupper() for c in tok)
        named[i] = upper >= 2 or (upper >= 1 and tok[0].isupper() and not start)  # an acronym, or a name
        start = False
    i = 0
    while i < len(tokens):  # "de la" in "Procuraduría General de la República" belongs to the name
        j = i
        while j < len(tokens) and not named[j] and tokens[j].lower() in _NAME_JOINERS:
            j += 1
        if j > i and i > 0 and j < len(tokens) and named[i - 1] and named[j]:
            named[i:j] = [True] * (j - i)
        i = max(j, i + 1)
    words = [t for t, n in zip(tokens, named, strict=True) if not n and t not in ".!?¿¡"]
    return " ".join(words) if words else text


def english_share(text: str, vocabulary: Container[str] = ()) -> float:
    """The share of the words in `text` that are common English words or corpus words; 1.0 with no words."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return 1.0
    ranks = english_words()
    known = sum(1 for w in words if ranks.get(w, ENGLISH_RANK) < ENGLISH_RANK or w in vocabulary)
    return known / len(words)


def foreign_reply(text: str, vocabulary: Container[str] = ()) -> Reply | None:
    """The reply for a question in another language, or None when it is English (or unclear).

    Only the question's own words (`own_words`) are judged.
    """
    text = own_words(text)
    if english_share(text, vocabulary) >= ENGLISH_SHARE:
        return None
    values = _detector().compute_language_confidence_values(text)
    if not values or values[0].language.name == "ENGLISH":
        return None
    english = next((v.value for v in values if v.language.name == "ENGLISH"), 0.0)
    if values[0].value < MIN_CONFIDENCE or values[0].value - english < MIN_LEAD:
        return None
    return REPLIES.get(values[0].language.name)
