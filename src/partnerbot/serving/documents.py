"""The chat page's whole-document view: `GET /documents/{doc_id}`, fetched when a card's view is opened.

A reply carries the quoted sentence in its paragraph, not the documents it cites (each is tens of kilobytes,
and the chat's messages travel again with every later reply); `static/page.js` fetches one the first time
its "Show the whole document" is opened. The address (`cards.document_address`) names the quote's offsets,
the id its mark gets, and a fingerprint of the quote, so a document whose text changed since the answer
(a reindex) is refused rather than marked in the wrong place.
"""

from __future__ import annotations

import functools
import html
import re

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from partnerbot.answering.assistant import Assistant
from partnerbot.errors import PartnerbotError
from partnerbot.phrases import UNAVAILABLE
from partnerbot.serving.cards import DOCUMENTS_PATH, document_html, quote_key

_MARK_ID = re.compile(r"doc-\d{1,6}-\d{1,3}")
CHANGED = ("<p class='pb-changed'>This document has changed since the answer was given: ask again to see the "
           "current text.</p>")


def routes(assistant: Assistant) -> APIRouter:
    """The whole-document view of the active index version's documents."""
    router = APIRouter()

    @functools.lru_cache(maxsize=256)
    def rendered(version: str, doc_id: str, start: int, end: int, mark: str) -> str:
        doc = assistant.document(doc_id)
        return document_html(doc.text, start, end, mark) if doc is not None else ""

    @router.api_route(DOCUMENTS_PATH + "{doc_id}", methods=["GET", "HEAD"], include_in_schema=False,
                      response_class=HTMLResponse)
    def document(doc_id: str, start: int = Query(ge=0), end: int = Query(ge=0), mark: str = Query(max_length=20),
                 quote: str = Query(max_length=16)) -> HTMLResponse:
        """The document rendered from its Markdown and sanitised, its text[start:end] in <mark id=mark>."""
        try:
            doc = assistant.document(doc_id)
        except PartnerbotError:  # the store is down, or there is no usable index
            return HTMLResponse(f"<p class='pb-changed'>{html.escape(UNAVAILABLE)}</p>", status_code=503)
        if doc is None or not _MARK_ID.fullmatch(mark) or start >= end or quote_key(doc.text[start:end]) != quote:
            return HTMLResponse(CHANGED, status_code=404)
        body = rendered(assistant.version, doc_id, start, end, mark)
        return HTMLResponse(body, headers={"Cache-Control": "private, max-age=300"})

    return router
