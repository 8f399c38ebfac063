"""The opt-in log of declined and uncertain questions, and their grouping by similarity for `partnerbot report unanswered`.

Only a question's cleaned text and the UTC date are kept: no time of day, no history, no address or
other client detail. The log is capped in size and rotated by the standard library's
`RotatingFileHandler`: when the file reaches `unanswered_max_bytes` it becomes `unanswered.jsonl.1`,
and the oldest backup beyond `unanswered_backups` is deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from partnerbot.settings import Settings

log = logging.getLogger("partnerbot.unanswered")
# Cosine distance under which two questions count as one topic (average linkage). all-MiniLM-L6-v2 puts
# rephrasings of one out-of-scope question ("Who leads ICE now?", "who runs ICE today") within about 0.45
# of each other, and questions on different topics beyond 0.7; 0.5 lies between (tests/test_unanswered.py).
GROUP_DISTANCE = 0.5
# Average-linkage clustering needs all pairwise distances: 5,000 questions is about 100 MB of them.
MAX_GROUPED = 5000


@dataclass(frozen=True)
class Entry:
    """One logged refusal."""

    date: dt.date
    question: str


@dataclass(frozen=True)
class Group:
    """Questions on one topic: each distinct wording with its count, the most frequent first."""

    count: int
    questions: tuple[tuple[str, int], ...]
    first: dt.date
    last: dt.date


def recorder(settings: Settings) -> Callable[[str], None] | None:
    """What a front end gives `Assistant` to log unanswered questions: `record` when `log_unanswered` is on."""
    return (lambda question: record(settings, question)) if settings.answering.log_unanswered else None


def record(settings: Settings, question: str, today: dt.date | None = None) -> None:
    """Append one refused question with the UTC date, rotating the file when it is full.

    A failure to write is logged, never raised: answering matters more than the log.
    """
    path = settings.unanswered_path
    day = today or dt.datetime.now(dt.UTC).date()
    line = json.dumps({"date": day.isoformat(), "question": question}, ensure_ascii=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Several processes (serve replicas, `partnerbot ask`) may share a data directory: the lock keeps
        # one rotation from racing another. The handler is opened per line so each write sees the true size.
        with FileLock(str(path) + ".lock", timeout=10):
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=settings.answering.unanswered_max_bytes, backupCount=settings.answering.unanswered_backups,
                encoding="utf-8", delay=True)
            try:
                handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
            finally:
                handler.close()
    except Exception as exc:  # a full disk or a stuck lock must not stop an answer
        log.warning("could not record an unanswered question in %s: %s", path, exc)


def log_files(settings: Settings) -> list[Path]:
    """The log and its backups that exist, oldest first."""
    path = settings.unanswered_path
    backups = [path.with_name(f"{path.name}.{i}") for i in range(settings.answering.unanswered_backups, 0, -1)]
    return [p for p in (*backups, path) if p.exists()]


def read(settings: Settings, since: dt.date | None = None) -> tuple[list[Entry], list[str]]:
    """The logged refusals on or after `since`, oldest first, and the places (`file:line`) of damaged lines."""
    entries: list[Entry] = []
    damaged: list[str] = []
    for path in log_files(settings):
        for n, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
                entry = Entry(dt.date.fromisoformat(data["date"]), str(data["question"]))
            except (ValueError, KeyError, TypeError):  # a line torn by a crash: skip it, say where
                damaged.append(f"{path}:{n}")
                continue
            if since is None or entry.date >= since:
                entries.append(entry)
    return entries, damaged


def group(settings: Settings, entries: Sequence[Entry], distance: float = GROUP_DISTANCE) -> tuple[list[Group], int]:
    """Group the questions by meaning, the largest group first.

    Identical wordings (ignoring case and spacing) count as one; the distinct wordings are embedded with
    the configured model and clustered by scikit-learn's average-linkage `AgglomerativeClustering`.

    Returns:
        The groups, and how many of the rarest distinct wordings were left out (beyond `MAX_GROUPED`).
    """
    if not entries:
        return [], 0
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    dates: dict[str, list[dt.date]] = {}
    for e in entries:
        key = " ".join(e.question.lower().split())
        counts[key] += 1
        shown.setdefault(key, e.question)
        dates.setdefault(key, []).append(e.date)
    keys = [k for k, _ in counts.most_common(MAX_GROUPED)]
    labels = _cluster(settings, [shown[k] for k in keys], distance)
    members: dict[int, list[str]] = {}
    for key, label in zip(keys, labels, strict=True):
        members.setdefault(label, []).append(key)
    groups = []
    for ks in members.values():
        days = [d for k in ks for d in dates[k]]
        groups.append(Group(sum(counts[k] for k in ks), tuple((shown[k], counts[k]) for k in ks), min(days), max(days)))
    groups.sort(key=lambda g: (-g.count, -g.last.toordinal(), g.questions[0][0]))
    return groups, len(counts) - len(keys)


def _cluster(settings: Settings, texts: list[str], distance: float) -> list[int]:
    if len(texts) == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    from partnerbot.index.embed import embed_texts

    vectors = embed_texts(settings, texts)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average")
    return [int(x) for x in model.fit_predict(vectors)]
