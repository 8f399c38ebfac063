"""The chat page's answer messages: the answer, its source cards right under it, and each whole document.

Everything here is one line of HTML (the chat renders Markdown, and a blank line or an indented line would
end an HTML block). Corpus text is escaped; a whole document is rendered from its Markdown by markdown-it-py
with raw HTML off, then cleaned by nh3 against an allowlist, so nothing in the corpus can add markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import nh3
from markdown_it import MarkdownIt

from partnerbot.phrases import CITATION_RE, EXAMPLE_QUESTIONS, GENERATED_NOTE, UNCERTAIN
from partnerbot.text import block_text, paragraph_span

# Private-use characters mark the cited sentence in the Markdown source: they pass through the renderer as
# plain text and become <mark> afterwards, wherever the sentence ends up (a paragraph, a list item).
_OPEN, _CLOSE = "\ue000", "\ue001"
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_DOC_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "strong", "em", "code", "blockquote",
             "br", "hr", "a", "mark"}
_DOC_ATTRIBUTES = {"a": {"href", "title"}, "mark": {"id", "class"}}
# A web archive's copy: its address holds the capture time, e.g. /web/20201218011334/https://www.ice.gov/...
_CAPTURE = re.compile(r"/(\d{4})(\d{2})(\d{2})\d{6}/")

Lookup = Callable[[str], Any]  # a document id -> the document (with `.text`), or None


def date_label(url: str, date: str, checked: str) -> str:
    """What a source's date is, in words: "page checked …", "archived …" or "published …".

    The corpus dates each footnote by its page's publication (a release, report or law), by the capture of an
    archived copy (the timestamp in its address), or, for an undated live page, by the day its text was checked
    (`checked`: the latest date any footnote carries, since nothing was published after the check).
    """
    capture = _CAPTURE.search(url)
    if capture and "-".join(capture.groups()) == date:
        return f"archived {date}"
    if not capture and date == checked:
        return f"page checked {date}"
    return f"published {date}"


def page_label(page: dict[str, Any]) -> str:
    """What a link to a supporting page says: its title, or else its host ("www.gao.gov")."""
    return page.get("title") or urlparse(page["url"]).netloc or page["url"]


def _pages(source: dict[str, Any]) -> list[dict[str, Any]]:
    """A source's supporting pages, the one in `url` first (older answers carry only `url`)."""
    pages = [p for p in source.get("pages") or [] if p["url"] != source["url"]]
    first = {"url": source["url"], "date": source["date"], "title": source.get("page_title", "")}
    return [first, *pages]


def _link(url: str, text: str, cls: str = "") -> str:
    esc = html.escape
    attr = f" class='{cls}'" if cls else ""
    return f"<a{attr} href='{esc(url, quote=True)}' target='_blank' rel='noopener noreferrer'>{esc(text)}</a>"


def quote_in_paragraph(text: str, start: int, end: int) -> str:
    """The paragraph holding text[start:end], escaped, with that sentence in <mark>."""
    a, b = paragraph_span(text, start, end)
    esc = html.escape
    before = [block_text(line) for line in text[a:start].split("\n")]  # each piece starts a line
    first, *rest = text[end:b].split("\n")  # the first piece ends the quote's own line
    after = [first, *(block_text(line) for line in rest)]
    return f"{esc(' '.join(before))}<mark>{esc(text[start:end])}</mark>{esc(' '.join(after))}"


def document_html(text: str, start: int, end: int, mark_id: str) -> str:
    """A whole document rendered from its Markdown, sanitised, with text[start:end] in <mark id=mark_id>."""
    source = f"{text[:start]}{_OPEN}{text[start:end]}{_CLOSE}{text[end:]}"
    rendered = _MD.render(source)
    rendered = rendered.replace(_OPEN, f"<mark class='pb-cited' id='{html.escape(mark_id, quote=True)}'>")
    rendered = rendered.replace(_CLOSE, "</mark>")
    clean = nh3.clean(rendered, tags=_DOC_TAGS, attributes=_DOC_ATTRIBUTES, link_rel="noopener noreferrer",
                      url_schemes={"http", "https"})
    return " ".join(clean.split("\n"))


def _card(source: dict[str, Any], number: int, lookup: Lookup, checked: str) -> str:
    esc = html.escape
    n = source["n"]
    doc = lookup(source["doc_id"])
    if doc is not None and doc.text[source["start"] : source["end"]] == source["quote"]:
        context = quote_in_paragraph(doc.text, source["start"], source["end"])
        whole = document_html(doc.text, source["start"], source["end"], f"doc-{number}-{n}")
    else:  # the index changed since this answer: show the quote alone
        context, whole = f"<mark>{esc(source['quote'])}</mark>", ""
    lines = [f"<span class='pb-label'>{label}</span> {_link(page['url'], page_label(page))}, "
             f"{esc(date_label(page['url'], page['date'], checked))}"
             for label, page in zip(["Source:"] + ["Also:"] * 9, _pages(source), strict=False)]
    program = source.get("doc_url") and source["doc_url"] != source["url"]
    return (
        f"<article class='pb-card' id='src-{number}-{n}' tabindex='-1'>"
        f"<h3 class='pb-card-title'>[{n}] {esc(source['title'])}</h3>"
        f"<p class='pb-meta'>Section: {esc(source['section'])}</p>"
        f"<p class='pb-quote'>{context}</p>"
        + "".join(f"<p class='pb-page'>{line}</p>" for line in lines)
        + (f"<p class='pb-program'>{_link(source['doc_url'], 'Program page: ' + source['title'])}</p>" if program else "")
        + (f"<details class='pb-whole'><summary>Show the whole document</summary>"
           f"<div class='pb-doc'>{whole}</div></details>" if whole else "")
        + "</article>"
    )


def sources_block(data: dict[str, Any], number: int, lookup: Lookup, checked: str) -> str:
    """Answer `number`'s sources, collapsed under a summary that names them; empty when there are none."""
    sources = data.get("sources") or []
    if not sources:
        return ""
    esc = html.escape
    titles = "; ".join(dict.fromkeys(s["title"] for s in sources))
    note = ("<p class='pb-note'>Not a confident answer: these are the closest passages in the sources, "
            "which may not answer the question.</p>" if data.get("outcome") == "uncertain" else "")
    return (f"<details class='pb-sources' id='sources-{number}'><summary>Sources ({len(sources)}): {esc(titles)}</summary>"
            + note + "".join(_card(s, number, lookup, checked) for s in sources) + "</details>")


def linked(text: str, number: int, sources: Sequence[dict[str, Any]]) -> str:
    """Escape `text` and make each `[n]` of answer `number` a link to its source card (see `static/page.js`).

    A screen reader reads the link as "source 1: <title>" instead of "left bracket 1 right bracket". The chat's
    sanitizer drops `aria-label`, so the name travels as `title` (a tooltip) and page.js makes it the label.
    """
    titles = {str(s["n"]): s["title"] for s in sources}

    def link(m: re.Match[str]) -> str:
        n = m.group(1)
        name = html.escape(f"source {n}: {titles[n]}" if n in titles else f"source {n}", quote=True)
        return f'<a class="pb-cite" href="#src-{number}-{n}" title="{name}">[{n}]</a>'

    return CITATION_RE.sub(link, html.escape(text))


def answer_text_html(data: dict[str, Any], number: int) -> str:
    """The answer's words, the same for every outcome: paragraphs, and the passages of an unsure reply as a list."""
    text = data["answer"]
    sources = data.get("sources") or []
    if data.get("outcome") == "uncertain" and text.startswith(UNCERTAIN):
        items = [line[2:] if line.startswith("- ") else line for line in text[len(UNCERTAIN) :].split("\n") if line]
        return (f"<p>{html.escape(UNCERTAIN)}</p><ul class='pb-passages'>"
                + "".join(f"<li>{linked(item, number, sources)}</li>" for item in items) + "</ul>")
    return "".join(f"<p>{linked(part, number, sources)}</p>" for part in text.split("\n") if part.strip())


def _outcome(data: dict[str, Any]) -> str:
    """The reply's outcome; "problem" for a request that got no answer (it carries an `error`)."""
    if data.get("error") and not data.get("outcome"):
        return "problem"
    return str(data.get("outcome") or ("declined" if data.get("refused") else "answered"))


def message_html(data: dict[str, Any], number: int, lookup: Lookup, checked: str) -> str:
    """One answer message of the chat: one look for every outcome (answered, uncertain, declined, a problem)."""
    outcome = _outcome(data)
    generated = (f"<p class='pb-generated'><em>{html.escape(GENERATED_NOTE)}</em></p>"
                 if data.get("mode") == "generated" else "")
    try_these = ("<p class='pb-try'>You could ask one of these instead:</p>"
                 if outcome == "declined" and not data.get("error") else "")
    return (f"<div class='pb-msg pb-{html.escape(outcome)}'>{generated}{answer_text_html(data, number)}{try_these}"
            f"{sources_block(data, number, lookup, checked)}</div>")


def example_options(data: dict[str, Any]) -> list[dict[str, str]]:
    """The example questions offered as buttons under a decline (none under any other reply)."""
    if _outcome(data) != "declined" or data.get("error"):
        return []
    return [{"label": q, "value": q} for q in EXAMPLE_QUESTIONS]
