"""Characters and markup that are not text: lone surrogates, control characters, HTML and Markdown markers.

One definition of each serves every place that needs it: the boundary cleaning of user text (`sanitize.py`,
which adds the limits and errors), replies written back to a client (`scrub`), and the corpus check, which
refuses a document body holding a control character (`first_control`).
"""

from __future__ import annotations

import html
import re
import unicodedata

import nh3

# Every HTML element name a browser knows (Ammonia's allowed tags are the common ones; the rest are those a
# sanitiser removes): `<name ...>` with one of these opens a tag, any other `<` is text.
_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) | frozenset(["address", "applet", "audio", "base", "basefont", "big", "blink", "body", "button", "canvas", "command", "content", "dialog", "dir", "element", "embed", "fieldset", "font", "form", "frame", "frameset", "head", "html", "iframe", "image", "input", "isindex", "keygen", "label", "legend", "link", "listing", "main", "marquee", "math", "menu", "menuitem", "meta", "meter", "multicol", "nextid", "nobr", "noembed", "noframes", "noscript", "object", "optgroup", "option", "output", "param", "picture", "plaintext", "portal", "progress", "rb", "script", "search", "section", "select", "shadow", "slot", "source", "spacer", "style", "svg", "template", "textarea", "title", "track", "video", "xmp"])
_TAG_NAMES = "|".join(sorted(_HTML_TAGS, key=len, reverse=True))
# A `<` that does not open a complete tag of a known element, a comment (`<!--`), a declaration or a
# processing instruction is text; `&` is always text.
_TEXT_LT = re.compile(rf"<(?!/?(?:{_TAG_NAMES})(?:[\s/][^<>]*)?>|!|\?)", re.I)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Every line break Unicode knows, CR LF as one.
_LINE_BREAK = re.compile(r"\r\n|[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")
_SPACES = re.compile(r"[\t\x1f]")
_MARKDOWN = re.compile(r"^(?:[#>*]+\s*|[-+]\s+)+")
_MAX_PASSES = 8  # markup nested to hide a tag (`<<b>b>`) loses one level a pass


def scrub(text: str) -> str:
    """`text` with lone surrogates as U+FFFD (a split pair joined again): encodable as UTF-8, nothing else changed."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def is_control(char: str) -> bool:
    """Is `char` a control (Cc), format (Cf) or surrogate (Cs) code point, or a noncharacter: nothing a reader sees?"""
    code = ord(char)
    return unicodedata.category(char) in ("Cc", "Cf", "Cs") or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def first_control(text: str, allowed: str = "\t\n\r") -> int:
    """The offset of the first control character of `text` (see `is_control`) not in `allowed`; -1 if none."""
    return next((i for i, c in enumerate(text) if c not in allowed and is_control(c)), -1)


def _remove_controls(text: str) -> str:
    """`text` with tabs as spaces and every other control character (see `is_control`) removed."""
    return "".join(c for c in _SPACES.sub(" ", text) if not is_control(c))


def _strip_html(text: str) -> str:
    """The text of `text` as nh3 sees it with no tags allowed; angle brackets and entities that are not markup stay."""
    for _ in range(_MAX_PASSES):
        marked = _TEXT_LT.sub("&lt;", text.replace("&", "&amp;"))
        out = html.unescape(nh3.clean(marked, tags=set(), strip_comments=True))
        if out == text:
            return text
        text = out
    return text.replace("<", " ")  # still nested after every pass: no `<` is left to open a tag


def _unmark(line: str) -> str:
    """`line` without its leading Markdown markers, and without the closing `*` of an emphasis they opened."""
    marker = _MARKDOWN.match(line)
    if not marker:
        return line
    rest = line[marker.end():]
    return rest.rstrip("*").rstrip() if marker.group().rstrip().endswith("*") else rest


def plain_text(text: str) -> str:
    """`text` without control characters, then HTML, then each line's leading Markdown markers, lines kept apart.

    Line breaks survive until the markers are gone (a marker opens a line), as "\\n" whatever break they were.
    """
    text = _strip_html("\n".join(_remove_controls(line) for line in _LINE_BREAK.split(text)))
    return "\n".join(_unmark(line.strip()) for line in text.split("\n"))
