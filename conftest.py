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
# Lesson 11 writes a conftest and test modules beside itself (notebooks/*.py) for its own pytest
# runs: they belong to those runs, not to the course's suite.
collect_ignore_glob = ["notebooks/*.py"]


# --- kernel start-up under pytest-xdist -------------------------------------------------------
# Two workers that start kernels at the same moment can race for the same free ports, and the
# loser dies with "Kernel died before replying to kernel_info" (seen once in a clean-clone run).
# Kernels therefore start one at a time across workers (a file lock, held until the kernel
# answers), and a start that fails anyway is tried once more.

import nbval.kernel  # noqa: E402
import pytest  # noqa: E402

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


# --- scheduling under pytest-xdist --------------------------------------------------------------
# `--dist loadscope` gives each module, and each notebook, to one worker as a whole (a notebook's
# cells share one kernel). tests/test_corpus.py was then one unit holding half of the suite's
# time (1229 of 2379 s measured): it is split by exercise here (a lesson's corpus, 150-340 s for
# the largest, kept one worker waiting on its pauses while the others had finished), and the
# units known to take longest go first, so that no worker is left alone with a big one at the end.

# Seconds per unit in one --durations run of the whole suite (2026-12-07, 2 workers, load
# average about 20). Only the order matters: a stale figure costs time, never a test.
SLOWEST = {
    "tests/test_corpus.py::l11": 340, "tests/test_corpus.py::l06": 224,
    "tests/test_corpus.py::l07": 165, "tests/test_corpus.py::l05": 153,
    "notebooks/10-performance-and-scale.ipynb": 108, "tests/test_corpus.py::l04": 105,
    "tests/test_databases.py": 100, "tests/test_corpus.py::l08": 93,
    "notebooks/11-testing-and-capstone.ipynb": 84,
    "solutions/11-testing-and-capstone-solution.ipynb": 80, "tests/test_corpus.py::l09": 79,
    "notebooks/05-asyncpg-bulk-and-types.ipynb": 48,
    "solutions/06-sqlalchemy-core-async-solution.ipynb": 46,
    "solutions/08-relationships-and-loading-solution.ipynb": 40,
    "notebooks/06-sqlalchemy-core-async.ipynb": 40, "solutions/07-orm-sessions-solution.ipynb": 40,
    "solutions/09-fastapi-in-process-solution.ipynb": 33, "notebooks/09-fastapi-in-process.ipynb": 32,
    "exercises/07-orm-sessions-workbook.ipynb": 29,
    "exercises/11-testing-and-capstone-workbook.ipynb": 27,
}


def corpus_unit(nodeid: str) -> str:
    """"l06-q1" for a corpus test of lesson 06's q1, "l06" for one about the lesson as a whole."""
    parts = nodeid.split("[", 1)[1].rstrip("]").split("-")
    lesson = parts[0][:3]
    return f"{lesson}-{parts[1]}" if len(parts) > 1 and parts[1][:1] == "q" else lesson


@pytest.hookimpl(optionalhook=True)  # a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config, log):  # xdist's hook
    """With --dist loadscope: the corpus one unit per lesson, and the slowest units first."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SlowestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope == "tests/test_corpus.py" and "[l" in nodeid:  # test_...[l06_sqlalchemy_...-q1-...]
                return f"{scope}::{corpus_unit(nodeid)}"
            return scope

        def _assign_work_unit(self, node) -> None:
            heaviest = max(self.workqueue, key=lambda s: (SLOWEST.get(s, 0), len(self.workqueue[s])))
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return SlowestFirst(config, log)
