"""Run every benchmark in turn (make bench); each prints a Markdown table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script in ("ask_latency.py", "retrievers.py", "index_builds.py", "cold_start.py", "load.py", "malformed.py",
               "page.py"):
    print(f"\n## {script}\n", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
