"""The one cleaning every piece of user text gets, at the edge, before anything else sees it.

A question, each earlier turn of the conversation and each part of an OpenAI message pass through
`clean_text` before they reach the tokenizer, a log or a response writer:

- lone UTF-16 surrogates (a JSON `"\\ud83d"` decodes to one) become U+FFFD; a surrogate pair split in
  two becomes its character again. They are the only code points UTF-8 cannot encode, so after this every
  string can be written anywhere;
- control and format characters are removed (line breaks and tabs count as spaces);
- HTML is stripped by nh3 (Ammonia): tags and comments go, `<script>` and `<style>` with their content;
  angle brackets that do not open an HTML tag are text (`What is <HERO Corps>?`, `a < b`), and so are
  entities as typed (`&amp;` stays `&amp;`);
- leading Markdown markers (`#`, `>`, `*`, a `-` or `+` list bullet) are dropped from each line;
- whitespace runs become one space, and the text is NFC-normalised.

What is shown keeps the question as typed (NFC only); what is matched is `fold`ed further (NFKC), so full-width
and other compatibility forms (`２８７（ｇ）`, `ﬁ`) match their ordinary spelling.

Cleaning is idempotent: clean text comes out of `clean_text` unchanged (a test checks it on any text), so a
layer that cleans what an outer layer already cleaned changes nothing.

What counts as a control character, HTML or a Markdown marker is the text toolkit's (`partnerbot.text.clean`);
this module adds what the boundary needs on top: the length limits, the errors, and which turns are kept.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from partnerbot.errors import InputError
from partnerbot.text import plain_text, scrub

HISTORY_TURNS = 6  # the earlier turns kept: a follow-up leans on the last few, never on the whole log


def clean_text(value: Any, field: str, limit: int, what: str = "text") -> str:
    """`value` cleaned as described above.

    Args:
        field: where the text came from (`question`, `history[2]`, `messages[0].content[1].text`), for errors.
        limit: the most characters the cleaned text may have.
        what: what the text is, in error messages ("the question").

    Raises:
        InputError: `value` is not a string, is far over `limit` before cleaning, or is over it after.
            The error's `field` is `field`.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be text", field=field)
    if len(value) > limit * 4:  # far over the limit: refuse before doing any work on it
        raise InputError(f"{what} is too long ({len(value):,} characters; the limit is {limit:,})", field=field)
    text = plain_text(unicodedata.normalize("NFC", scrub(value)))
    text = " ".join(text.split())
    if len(text) > limit:
        raise InputError(f"{what} is too long ({len(text):,} characters; the limit is {limit:,})", field=field)
    return text


def fold(text: str) -> str:
    """Cleaned `text` for matching: compatibility forms folded (NFKC) and whitespace runs made one space again.

    `２８７（ｇ）` becomes `287(g)`, `ﬁ` becomes `fi`, a no-break space a space. Only what is matched against the
    corpus is folded; an answer shows the question as cleaned.
    """
    return " ".join(unicodedata.normalize("NFKC", text).split())


def shown(value: Any, limit: int) -> str:
    """What a front end shows of a question it may not have been able to use: cleaned as `clean_text` cleans,
    cut to `limit` characters. Never raises: a value that is not text shows as nothing."""
    if not isinstance(value, str):
        return ""
    text = plain_text(unicodedata.normalize("NFC", scrub(value[: limit * 4])))
    return " ".join(text.split())[:limit]


def clean_question(question: Any, limit: int, field: str = "question") -> str:
    """The question, cleaned.

    Raises:
        InputError: not text, empty once cleaned, or longer than `limit` characters (`field` names it).
    """
    text = clean_text(question, field, limit, "the question")
    if not text:
        raise InputError("the question is empty: type a question about the ICE partnership programs", field=field)
    return text


def clean_history(history: Any, limit: int, field: str = "history") -> list[str]:
    """The usable earlier user turns, cleaned: the last `HISTORY_TURNS` strings, each cut to `limit` characters.

    Turns that are not text, or empty once cleaned, are left out: a conversation's history is context, so a bad
    turn costs its context, never the question.
    """
    if not isinstance(history, (list, tuple)):
        return []
    out = []
    start = max(0, len(history) - HISTORY_TURNS)
    for i, turn in enumerate(history[start:], start):
        if not isinstance(turn, str):
            continue
        text = clean_text(turn[: limit * 4], f"{field}[{i}]", limit * 4)[:limit].strip()
        if text:
            out.append(text)
    return out


def clean_parts(parts: Sequence[str], field: str, limit: int) -> str:
    """Several pieces of one message (OpenAI content parts), each cleaned (`field[i].text`), joined by spaces."""
    return " ".join(t for i, p in enumerate(parts) if (t := clean_text(p, f"{field}[{i}].text", limit, "the message")))
