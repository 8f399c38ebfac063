"""The feedback log (JSONL, one line per vote; a comment added after a vote repeats it) and its export to cases."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from partnerbot.answers import Answer
from partnerbot.errors import PartnerbotError

MAX_COMMENT = 2000


def record(path: Path, *, question: str, history: list[str], answer: Answer, vote: str,
           comment: str = "", index_version: str = "") -> dict[str, Any]:
    """Append one vote to the log. Only these fields are kept: no IP address or client details.

    Raises:
        PartnerbotError: the vote is not "up" or "down".
    """
    if vote not in ("up", "down"):
        raise PartnerbotError(f"vote must be 'up' or 'down', got {vote!r}")
    entry = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "index_version": index_version,
        "question": question,
        "history": list(history),
        "answer": answer.text,
        "refused": answer.refused,
        "sources": [s.to_dict() for s in answer.sources],
        "vote": vote,
        "comment": (comment or "")[:MAX_COMMENT],
    }
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one whole line per write, even across processes
        os.write(fd, line)
    finally:
        os.close(fd)
    return entry


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every well-formed entry of the log; a damaged line is reported with its number."""
    if not path.exists():
        return []
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PartnerbotError(f"{path}:{n}: not a JSON line ({exc.msg})") from exc
    return entries


def export_cases(log: Path, out: Path) -> int:
    """Write the logged questions as evaluation cases for staff to review and complete.

    Up-voted answers propose their cited documents as `sources`; down-voted ones leave the
    expectations empty. The latest vote and every comment go in a comment above each case.

    Returns:
        The number of cases written.
    """
    # The chat page records a vote at once, and a comment added to it afterwards as a second line with the same
    # vote: entries for one question (and history) make one case, with the latest vote and every comment.
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for entry in read_log(log):
        groups.setdefault((entry["question"], tuple(entry.get("history", []))), []).append(entry)
    blocks = ["# Cases exported from partnerbot feedback. Review each: add `sources` and `facts`, or `refuse: true`.\n"]
    count = 0
    for key, entries in groups.items():
        entry = entries[-1]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:8]
        case: dict[str, Any] = {"id": f"feedback-{digest}", "question": entry["question"]}
        if entry.get("history"):
            case["history"] = entry["history"]
        cited = list(dict.fromkeys(s["doc_id"] for s in entry.get("sources", [])))
        if entry.get("vote") == "up" and cited:
            case["sources"] = cited
        elif entry.get("vote") == "up" and entry.get("refused"):
            case["refuse"] = True
        comments = list(dict.fromkeys(" ".join(str(e.get("comment", "")).split()) for e in entries))
        comment = " / ".join(c for c in comments if c)
        note = f"# vote: {entry.get('vote')}; logged {entry.get('timestamp')}" + (f"; comment: {comment}" if comment else "")
        blocks.append(note + "\n" + yaml.safe_dump([case], sort_keys=False, allow_unicode=True, width=1000))
        count += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(blocks), encoding="utf-8")
    return count
