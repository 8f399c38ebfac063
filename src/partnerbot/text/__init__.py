"""The text toolkit: every piece of text handling that more than one part of partnerbot needs, in one place.

- `words`: tokens, stems, stopwords and pronouns (retrieval, the reader's features, follow-ups);
- `sentences`: sentences and paragraphs as character spans (the corpus, the index, generated answers, the
  quote shown in its paragraph);
- `patterns`: figures, years, months, names and dates (the reader's features, the verifier, the index);
- `clean`: lone surrogates, control characters, HTML and Markdown markers (the boundary cleaning in
  `sanitize`, the corpus check, replies).

It imports no layer of partnerbot (an import-linter contract checks it).
"""

from partnerbot.text.clean import first_control, is_control, plain_text, remove_controls, scrub, strip_html, unmark
from partnerbot.text.patterns import (
    FIGURE,
    MONTH,
    MONTHS,
    NUMBER,
    YEAR,
    date_words,
    iso_date,
    name_words,
    names,
    numbers,
)
from partnerbot.text.sentences import (
    ABBREVIATIONS,
    block_text,
    paragraph_span,
    paragraphs,
    sentence_spans,
    split_sentences,
)
from partnerbot.text.words import PRONOUNS, STOPWORDS, content_stems, stem, tokens

__all__ = [
    "ABBREVIATIONS", "FIGURE", "MONTH", "MONTHS", "NUMBER", "PRONOUNS", "STOPWORDS", "YEAR", "block_text",
    "content_stems", "date_words", "first_control", "is_control", "iso_date", "name_words", "names", "numbers",
    "paragraph_span", "paragraphs", "plain_text", "remove_controls", "scrub", "sentence_spans", "split_sentences",
    "stem", "strip_html", "tokens", "unmark",
]
