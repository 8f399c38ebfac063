"""The text toolkit: every piece of text handling that more than one part of partnerbot needs, in one place.

- `words`: tokens, stems, stopwords and pronouns (retrieval, the reader's features, follow-ups);
- `sentences`: sentences and paragraphs as character spans (the corpus, the index, generated answers, the
  quote shown in its paragraph);
- `patterns`: figures, years, months, names and dates (the reader's features, the verifier, the index);
- `clean`: lone surrogates, control characters, HTML and Markdown markers (the boundary cleaning in
  `sanitize`, the corpus check, replies).

It imports no layer of partnerbot (an import-linter contract checks it).
"""

from partnerbot.text.clean import first_control, plain_text, scrub
from partnerbot.text.patterns import FIGURE, MONTH, YEAR, date_words, iso_date, name_words, names, numbers
from partnerbot.text.sentences import block_text, paragraph_span, sentence_spans, split_sentences
from partnerbot.text.words import PRONOUNS, STOPWORDS, content_stems, stem, tokens

__all__ = [
    "FIGURE", "MONTH", "PRONOUNS", "STOPWORDS", "YEAR", "block_text", "content_stems", "date_words", "first_control",
    "iso_date", "name_words", "names", "numbers", "paragraph_span", "plain_text", "scrub", "sentence_spans",
    "split_sentences", "stem", "tokens",
]
