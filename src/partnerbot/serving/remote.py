"""Ask a running `partnerbot serve` instead of loading the model: its `POST /api/ask`, with httpx.

The reply is read back by `replies.from_body`, the inverse of what the server wrote with `replies.body`:
an `Answer` with every field it carried (`mode`, `fallback`, `outcome`, sources and their pages), or the
`Problem` the server reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from partnerbot.errors import PartnerbotError, StoreUnavailableError
from partnerbot.serving import replies
from partnerbot.serving.replies import Result


def ask(url: str, question: str, history: Sequence[str] = (), timeout: float = 60.0) -> Result:
    """The server's answer to `question`, or the problem it reported (unusable input, unavailable, rate limited).

    Raises:
        StoreUnavailableError: the server cannot be reached.
        PartnerbotError: `url` is not a partnerbot server (of this version).
    """
    endpoint = url.rstrip("/") + "/api/ask"
    try:
        reply = httpx.post(endpoint, json={"question": question, "history": list(history)}, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
        raise StoreUnavailableError(f"cannot reach the partnerbot server at {url} ({exc}); "
                                    "is `partnerbot serve` running there?") from exc
    except httpx.HTTPError as exc:
        raise PartnerbotError(f"cannot ask the server at {url}: {exc}") from exc
    try:
        return replies.from_body(reply.json(), reply.status_code)
    except (ValueError, KeyError, TypeError) as exc:  # not JSON, or JSON of something else
        raise PartnerbotError(f"{url} did not answer as a partnerbot server (HTTP {reply.status_code} from "
                              f"{endpoint}); is it a partnerbot of this version?") from exc
