"""The `partnerbot` command line: each command checks its options, calls one function, and reports.

`common` holds the apps and consoles; the commands are grouped by who runs them: `maintain` (maintainers:
index, status, corpus, feedback, report), `answer` (the public: ask, chat, serve) and `evaluate` (staff:
eval, tune, splits, calibrate). They are imported in that order, which is the order `--help` lists them.
"""

# isort: off
from partnerbot.cli import maintain
from partnerbot.cli import answer
from partnerbot.cli import evaluate
from partnerbot.cli.common import app
# isort: on

__all__ = ["answer", "app", "evaluate", "maintain"]
