"""Test configuration.

stderr is compared like any other output: the course's helpers write nothing to it, and a
notebook cell that shows a warning on purpose stores it. Timings never reach compared output
(cells that print them are marked NBVAL_IGNORE_OUTPUT), and tests/sanitize.cfg masks addresses,
temporary paths and durations.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The suite keeps its databases and progress apart from the learner's (`make test` sets this
# too; this covers a bare `pytest`).
os.environ.setdefault("COURSE_HOME", str(ROOT / ".course" / "test"))
