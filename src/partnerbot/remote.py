"""Ask a running `partnerbot serve` instead of loading the model: its `/ask` endpoint, through gradio_client.

gradio_client is Gradio's own client for the protocol behind a named endpoint (a queued call, then an
event stream), which changes with Gradio's versions; it is already installed with gradio, so the
client and the server move together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from .errors import InputError, PartnerbotError, StoreUnavailableError
from .types import Answer, Page, Source


def ask(url: str, question: str, history: Sequence[str] = (), timeout: float = 60.0) -> Answer:
    """The server's answer to `question`, as the `Answer` its `/ask` JSON describes.

    Raises:
        StoreUnavailableError: the server cannot be reached.
        InputError: the server declined the question as unusable (empty, too long) or is not ready.
        PartnerbotError: `url` is not a partnerbot server.
    """
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": timeout})
        data = client.predict(question, list(history), api_name="/ask")
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, ConnectionError) as exc:
        raise StoreUnavailableError(f"cannot reach the partnerbot server at {url} ({exc}); "
                                    "is `partnerbot serve` running there?") from exc
    except Exception as exc:  # gradio_client's errors for a page without the `/ask` endpoint vary by version
        raise PartnerbotError(f"{url} did not answer as a partnerbot server ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, dict) and data.get("error"):
        raise InputError(str(data["error"]))
    return answer_from_json(data, url)


def answer_from_json(data: Any, url: str = "the server") -> Answer:
    """The inverse of `Answer.to_dict`.

    Raises:
        PartnerbotError: `data` is not the JSON of an answer of this version of partnerbot.
    """
    try:
        return Answer(
            question=data["question"], text=data["answer"], refused=bool(data["refused"]),
            sources=tuple(Source(**(s | {"pages": tuple(Page(**p) for p in s.get("pages", ()))}))
                          for s in data["sources"]),
            timings_ms=dict(data.get("timings_ms", {})),
            unavailable=bool(data.get("unavailable", False)), language=str(data.get("language", "en")),
            mode=str(data.get("mode", "extractive")), fallback=str(data.get("fallback", "")),
            outcome=str(data.get("outcome", "")),
        )
    except (KeyError, TypeError) as exc:
        raise PartnerbotError(f"{url} answered in a format this partnerbot does not know ({exc}); "
                              "are the server and this client the same version?") from exc
