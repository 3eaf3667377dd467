"""Test configuration.

stderr is compared like any other output: the course's helpers write nothing to it, and a
notebook cell that shows a warning on purpose stores it. Timings never reach compared output
(cells that print them carry the nbval-ignore-output tag), and tests/sanitize.cfg masks addresses,
temporary paths and durations.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# The suite keeps its databases and progress apart from the learner's (`make test` sets this
# too; this covers a bare `pytest`).
os.environ.setdefault("COURSE_HOME", str(ROOT / ".course" / "test"))

# The real-JupyterHub test takes minutes: `make test-hub` asks for it, `make test` leaves it out
# (not collected, rather than reported as skipped).
collect_ignore = [] if os.environ.get("COURSE_TEST_HUB") else ["tests/test_hub.py"]


# --- kernel start-up under pytest-xdist -------------------------------------------------------
# Two workers that start kernels at the same moment can race for the same free ports, and the
# loser dies with "Kernel died before replying to kernel_info" (seen once in a clean-clone run).
# Kernels therefore start one at a time across workers (a file lock, held until the kernel
# answers), and a start that fails anyway is tried once more.

import nbval.kernel  # noqa: E402

try:
    import fcntl
except ImportError:  # Windows: no flock; the retry alone remains
    fcntl = None

_start_new_kernel = nbval.kernel.start_new_kernel
_LOCK = Path(os.environ["COURSE_HOME"]) / "kernel-start.lock"


def _start_one_at_a_time(*args, **kwargs):
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        with open(_LOCK, "w") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return _start_new_kernel(*args, **kwargs)
            except RuntimeError:
                if attempt == 2:
                    raise


nbval.kernel.start_new_kernel = _start_one_at_a_time
