"""Helpers shared by the benchmark scripts: timing, percentiles, Markdown tables, a built index."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` (numpy's linear interpolation); 0.0 when empty."""
    import numpy as np

    return float(np.percentile(values, q * 100)) if values else 0.0


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temp_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"pb-bench-{name}-"))


def questions() -> list[tuple[str, list[str]]]:
    from partnerbot.errors import InputError
    from partnerbot.evaluation.cases import load_cases
    from partnerbot.sanitize import clean_question

    def usable(question: str) -> bool:  # not the input-error case, nor a question that is markup only
        try:
            return bool(clean_question(question, 1000))
        except InputError:
            return False

    cases = load_cases([ROOT / "evals" / "train", ROOT / "evals" / "test"])
    return [(c.question, list(c.history)) for c in cases if usable(c.question)]
