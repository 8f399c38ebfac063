"""The chat page's messages: the asker's words, the answer, and its source cards right under it.

Everything here is one line of HTML (the chat renders Markdown, and a blank line or an indented line would
end an HTML block), made from an `Answer`'s parts (its outcome, notice, passages and sources), never from
its text. Corpus text is escaped; a whole document is rendered from its Markdown by markdown-it-py with raw
HTML off, then cleaned by nh3 against an allowlist, so nothing in the corpus can add markup. Whole
documents are not part of a message: the page fetches one when its view is opened (`documents`).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import nh3
from markdown_it import MarkdownIt

from partnerbot.answers import Answer, Outcome, Passage, Problem
from partnerbot.phrases import EXAMPLE_QUESTIONS, GENERATED_NOTE, cite
from partnerbot.text import block_text, paragraph_span
from partnerbot.types import Page, Source

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
DOCUMENTS_PATH = "/documents/"  # the whole-document view's address (`documents.routes`)


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


def page_label(page: Page) -> str:
    """What a link to a supporting page says: its title, or else its host ("www.gao.gov")."""
    return page.title or urlparse(page.url).netloc or page.url


def _pages(source: Source) -> list[Page]:
    """A source's supporting pages, the one in `url` first."""
    return [Page(source.url, source.date, source.page_title), *(p for p in source.pages if p.url != source.url)]


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


def quote_key(quote: str) -> str:
    """A short fingerprint of a quote: the whole-document view checks that the index still holds it."""
    return hashlib.sha256(quote.encode()).hexdigest()[:16]


def document_address(source: Source, mark_id: str) -> str:
    """Where the page fetches source's whole document, with the quote marked as `mark_id` (see `documents`)."""
    query = urlencode({"start": source.start, "end": source.end, "mark": mark_id, "quote": quote_key(source.quote)})
    return f"{DOCUMENTS_PATH.lstrip('/')}{quote(source.doc_id, safe='')}?{query}"  # relative: works under a prefix


def _card(source: Source, number: int, lookup: Lookup, checked: str) -> str:
    esc = html.escape
    n = source.n
    doc = lookup(source.doc_id)
    here = doc is not None and doc.text[source.start : source.end] == source.quote
    # The paragraph comes with the answer; the whole document is fetched when its view is opened (page.js), so
    # a reply carries no document, however many it cites. Without the script, the link opens it on its own.
    context = quote_in_paragraph(doc.text, source.start, source.end) if here else f"<mark>{esc(source.quote)}</mark>"
    lines = [f"<span class='pb-label'>{label}</span> {_link(page.url, page_label(page))}, "
             f"{esc(date_label(page.url, page.date, checked))}"
             for label, page in zip(["Source:"] + ["Also:"] * 9, _pages(source), strict=False)]
    program = source.doc_url and source.doc_url != source.url
    whole = document_address(source, f"doc-{number}-{n}")
    return (
        f"<article class='pb-card' id='src-{number}-{n}' tabindex='-1'>"
        f"<h3 class='pb-card-title'>[{n}] {esc(source.title)}</h3>"
        f"<p class='pb-meta'>Section: {esc(source.section)}</p>"
        f"<p class='pb-quote'>{context}</p>"
        + "".join(f"<p class='pb-page'>{line}</p>" for line in lines)
        + (f"<p class='pb-program'>{_link(source.doc_url, 'Program page: ' + source.title)}</p>" if program else "")
        + (f"<details class='pb-whole'><summary>Show the whole document</summary><div class='pb-doc'>"
           f"{_link(whole, 'Open the whole document', 'pb-doc-link')}</div></details>" if here else "")
        + "</article>"
    )


def sources_block(answer: Answer, number: int, lookup: Lookup, checked: str) -> str:
    """Answer `number`'s sources, collapsed under a summary that names them; empty when there are none."""
    if not answer.sources:
        return ""
    esc = html.escape
    titles = "; ".join(dict.fromkeys(s.title for s in answer.sources))
    note = ("<p class='pb-note'>Not a confident answer: these are the closest passages in the sources, "
            "which may not answer the question.</p>" if answer.outcome == Outcome.UNCERTAIN else "")
    return (f"<details class='pb-sources' id='sources-{number}'><summary>Sources ({len(answer.sources)}): "
            f"{esc(titles)}</summary>" + note + "".join(_card(s, number, lookup, checked) for s in answer.sources)
            + "</details>")


def linked(passage: Passage, number: int, sources: Sequence[Source]) -> str:
    """A passage of answer `number`, escaped, each of its citations a `[n]` link to its source card (see
    `static/page.js`).

    A screen reader reads the link as "source 1: <title>" instead of "left bracket 1 right bracket". The chat's
    sanitizer drops `aria-label`, so the name travels as `title` (a tooltip) and page.js makes it the label.
    """
    titles = {s.n: s.title for s in sources}

    def link(n: int) -> str:
        name = html.escape(f"source {n}: {titles[n]}" if n in titles else f"source {n}", quote=True)
        return f'<a class="pb-cite" href="#src-{number}-{n}" title="{name}">{cite(n)}</a>'

    marks = "".join(link(n) for n in passage.cites)
    return f"{html.escape(passage.text)} {marks}" if marks else html.escape(passage.text)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line.strip())


def answer_text_html(result: Answer | Problem, number: int) -> str:
    """The reply's words, from its parts: the notice, then the passages (a list when the reply is unsure)."""
    if isinstance(result, Problem):
        return _paragraphs(result.message)
    notice = _paragraphs(result.notice)
    cited = [linked(p, number, result.sources) for p in result.passages]
    if result.outcome == Outcome.UNCERTAIN:
        return notice + "<ul class='pb-passages'>" + "".join(f"<li>{c}</li>" for c in cited) + "</ul>"
    return notice + (f"<p>{' '.join(cited)}</p>" if cited else "")


def message_html(result: Answer | Problem, number: int, lookup: Lookup, checked: str) -> str:
    """One answer message of the chat: one look for every outcome (answered, uncertain, declined, a problem)."""
    if isinstance(result, Problem):
        return f"<div class='pb-msg pb-problem'>{answer_text_html(result, number)}</div>"
    generated = (f"<p class='pb-generated'><em>{html.escape(GENERATED_NOTE)}</em></p>"
                 if result.mode == "generated" else "")
    try_these = "<p class='pb-try'>You could ask one of these instead:</p>" if result.refused else ""
    return (f"<div class='pb-msg pb-{result.outcome}'>{generated}{answer_text_html(result, number)}{try_these}"
            f"{sources_block(result, number, lookup, checked)}</div>")


def example_options(result: Answer | Problem) -> list[dict[str, str]]:
    """The example questions offered as buttons under a decline (none under any other reply)."""
    if not isinstance(result, Answer) or not result.refused:
        return []
    return [{"label": q, "value": q} for q in EXAMPLE_QUESTIONS]


def question_html(text: str) -> str:
    """The asker's words as plain text: escaped, in an HTML block of one line, so the chat renders no Markdown
    in them (an image `![t](https://…)` stays text, and nothing is fetched)."""
    return f"<p class='pb-asked'>{html.escape(text)}</p>"
