"""Turn an extractive answer into a generated one: write (`generate`), check (`verify`), compose or fall back.

The generated answer keeps only verified sentences, each followed by the `[n]` of the quoted sources it
rests on; its sources are those quotes, renumbered in order of first citation. When the endpoint fails
or times out, the reply is malformed, or no sentence survives, the extractive answer is returned
unchanged, with `fallback` saying why.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from partnerbot.answering.generate import Claim, GenerationError, Generator
from partnerbot.answering.verify import Verifier, read_verifier, verify
from partnerbot.answers import Answer, Passage
from partnerbot.index.embed import embed_texts
from partnerbot.settings import Settings
from partnerbot.types import Source


class Writer:
    """Writes generated answers through one endpoint, with the calibrated verifier."""

    def __init__(self, settings: Settings, generator: Generator | None = None, verifier: Verifier | None = None):
        """Raises VerifierError when the calibrated threshold cannot be read."""
        self.settings = settings
        self.generator = generator or Generator(settings)
        self.verifier = verifier or read_verifier(settings.generation.verifier_path)

    def write(self, extractive: Answer, given_vecs: np.ndarray) -> Answer:
        """The generated answer for `extractive` (answered, with its quotes as sources), or it with a fallback.

        Args:
            extractive: the quoted answer; its sources are the sentences given to the model, in order.
            given_vecs: unit-length embeddings of those sentences, one row per source.
        """
        t0 = time.perf_counter()
        given = [s.quote for s in extractive.sources]
        try:
            claims = self.generator.draft(extractive.question, given)
        except GenerationError as exc:
            return _fallback(extractive, exc.reason, (), t0)
        t1 = time.perf_counter()
        vecs = embed_texts(self.settings, [c.text for c in claims])
        kept, dropped = verify(claims, given, vecs, given_vecs, self.verifier.threshold)
        if not kept:
            return _fallback(extractive, "no generated sentence passed verification", tuple(dropped), t0)
        passages, sources = compose(kept, extractive.sources)
        timings = {**extractive.timings_ms, "generate": (t1 - t0) * 1000,
                   "verify": (time.perf_counter() - t1) * 1000}
        timings["total"] = extractive.timings_ms.get("total", 0.0) + (time.perf_counter() - t0) * 1000
        return dataclasses.replace(extractive, passages=passages, sources=sources, timings_ms=timings,
                                   mode="generated", dropped=tuple(dropped), extractive=extractive.text)


def compose(kept: list[Claim], given: tuple[Source, ...]) -> tuple[tuple[Passage, ...], tuple[Source, ...]]:
    """The kept sentences with their citations renumbered, and the cited sources in citation order."""
    order: dict[int, int] = {}
    passages = []
    for claim in kept:
        for n in claim.cited:
            order.setdefault(n, len(order) + 1)
        body = claim.text if claim.text[-1] in ".!?" else claim.text + "."
        passages.append(Passage(body, tuple(order[n] for n in claim.cited)))
    sources = tuple(dataclasses.replace(given[old - 1], n=new) for old, new in order.items())
    return tuple(passages), sources


def _fallback(extractive: Answer, reason: str, dropped: tuple, t0: float) -> Answer:
    timings = {**extractive.timings_ms, "generate": (time.perf_counter() - t0) * 1000}
    timings["total"] = extractive.timings_ms.get("total", 0.0) + timings["generate"]
    return dataclasses.replace(extractive, fallback=reason, dropped=dropped, timings_ms=timings,
                               extractive=extractive.text)
