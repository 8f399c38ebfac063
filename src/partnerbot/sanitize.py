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

Cleaning is idempotent: clean text comes out of `clean_text` unchanged (a test checks it on any text), so a
layer that cleans what an outer layer already cleaned changes nothing.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import nh3

from partnerbot.errors import InputError

HISTORY_TURNS = 6  # the earlier turns kept: a follow-up leans on the last few, never on the whole log

# Every HTML element name a browser knows (Ammonia's allowed tags are the common ones; the rest are those a
# sanitiser removes): `<name ...>` with one of these opens a tag, any other `<` is text.
_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) | frozenset(["address", "applet", "audio", "base", "basefont", "big", "blink", "body", "button", "canvas", "command", "content", "dialog", "dir", "element", "embed", "fieldset", "font", "form", "frame", "frameset", "head", "html", "iframe", "image", "input", "isindex", "keygen", "label", "legend", "link", "listing", "main", "marquee", "math", "menu", "menuitem", "meta", "meter", "multicol", "nextid", "nobr", "noembed", "noframes", "noscript", "object", "optgroup", "option", "output", "param", "picture", "plaintext", "portal", "progress", "rb", "script", "search", "section", "select", "shadow", "slot", "source", "spacer", "style", "svg", "template", "textarea", "title", "track", "video", "xmp"])
_TAG_NAMES = "|".join(sorted(_HTML_TAGS, key=len, reverse=True))
# A `<` that does not open a complete tag of a known element, a comment (`<!--`), a declaration or a
# processing instruction is text; `&` is always text.
_TEXT_LT = re.compile(rf"<(?!/?(?:{_TAG_NAMES})(?:[\s/][^<>]*)?>|!|\?)", re.I)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n|[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")
_SPACES = re.compile(r"[\t\x1f]")
_MARKDOWN = re.compile(r"^(?:[#>*]+\s*|[-+]\s+)+")
_MAX_PASSES = 8  # markup nested to hide a tag (`<<b>b>`) loses one level a pass


def scrub(text: str) -> str:
    """`text` with lone surrogates as U+FFFD (a split pair joined again): encodable as UTF-8, nothing else changed."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _controls(text: str) -> str:
    """Tabs as spaces; every other control (Cc) and format (Cf) character, and noncharacters, removed."""
    text = _SPACES.sub(" ", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs")
                   and not (0xFDD0 <= ord(c) <= 0xFDEF or (ord(c) & 0xFFFE) == 0xFFFE))


def _strip_html(text: str) -> str:
    """The text of `text` as nh3 sees it with no tags allowed; angle brackets and entities that are not markup stay."""
    for _ in range(_MAX_PASSES):
        marked = _TEXT_LT.sub("&lt;", text.replace("&", "&amp;"))
        out = html.unescape(nh3.clean(marked, tags=set(), strip_comments=True))
        if out == text:
            return text
        text = out
    return text.replace("<", " ")  # still nested after every pass: no `<` is left to open a tag


def _clean_lines(text: str) -> str:
    """Controls, then HTML, then each line's leading Markdown markers (line breaks survive until then)."""
    lines = _LINE_BREAK.split(text)
    text = _strip_html("\n".join(_controls(line) for line in lines))
    return "\n".join(_unmark(line.strip()) for line in text.split("\n"))


def _unmark(line: str) -> str:
    """`line` without its leading Markdown markers, and without the closing `*` of an emphasis they opened."""
    marker = _MARKDOWN.match(line)
    if not marker:
        return line
    rest = line[marker.end():]
    return rest.rstrip("*").rstrip() if marker.group().rstrip().endswith("*") else rest


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
    text = _clean_lines(unicodedata.normalize("NFC", scrub(value)))
    text = " ".join(text.split())
    if len(text) > limit:
        raise InputError(f"{what} is too long ({len(text):,} characters; the limit is {limit:,})", field=field)
    return text


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
