"""Fixed phrases: the refusal, the messages for a request that gets no answer, and the citation format."""

from __future__ import annotations

import re

# Questions the assistant answers (a test checks it), offered wherever it cannot help.
EXAMPLE_QUESTIONS = (
    "What is HERO Corps?",
    "When was the Cyber Crimes Center established?",
    "How many lookouts has the war crimes center issued?",
)

# The short decline (at most 35 words, a test checks it): what partnerbot covers, and no more. The programs are
# listed once, in the chat page's intro; the page offers `EXAMPLE_QUESTIONS` as buttons under it.
REFUSAL = (
    "Sorry, that is outside what my sources cover. I answer questions about the ICE partnership programs "
    "named in ICE's July 30, 2020 press release."
)

# Heads an uncertain reply (`Answer.outcome == "uncertain"`): in scope, but no sentence is confident enough.
UNCERTAIN = "I'm not sure this answers your question. The closest passages in the sources:"

UNAVAILABLE = (
    "The assistant is temporarily unavailable because its document store cannot be reached. "
    "Please try again in a minute."
)

# A request without an answer (`types.Problem`): the index or reader is missing, or something unexpected failed.
NOT_READY = "The assistant is not ready: its index is missing or out of date. Please try again later."
TROUBLE = "Sorry, something went wrong while answering. Please try again."

# Shown above an answer written by a language model (`Answer.mode == "generated"`).
GENERATED_NOTE = "Written by a language model from the sources below: the quotes there are the evidence."

CITATION = "[{n}]"
CITATION_RE = re.compile(r"\[(\d+)\]")


def cite(n: int) -> str:
    """The citation marker for source `n`."""
    return CITATION.format(n=n)
