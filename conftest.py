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
# time (1229 of 2379 s measured): each of its answers is a unit here (a lesson's corpus, 150-340 s
# for the largest, kept one worker waiting on its pauses while the others had finished), and the
# units known to take longest go first, so that no worker is left alone with a big one at the end.

# Seconds per unit in one --durations=0 run of the whole suite (2026-12-08, 3 workers, load
# average about 4). Only the order matters: a stale figure costs time, never a test.
SLOWEST = {
    "notebooks/11-testing-and-capstone.ipynb": 58, "notebooks/10-performance-and-scale.ipynb": 55,
    "tests/test_repo.py": 50, "solutions/11-testing-and-capstone-solution.ipynb": 34,
    "tests/test_databases.py": 33, "notebooks/05-asyncpg-bulk-and-types.ipynb": 25,
    "notebooks/06-sqlalchemy-core-async.ipynb": 24, "solutions/09-fastapi-in-process-solution.ipynb": 19,
    "tests/test_explain.py": 18, "notebooks/09-fastapi-in-process.ipynb": 17,
    "notebooks/02-concurrency.ipynb": 16, "solutions/06-sqlalchemy-core-async-solution.ipynb": 15,
    "solutions/05-asyncpg-bulk-and-types-solution.ipynb": 13, "notebooks/00-welcome.ipynb": 12,
    "notebooks/07-orm-sessions.ipynb": 12, "exercises/07-orm-sessions-workbook.ipynb": 11,
    "tests/test_time_limits.py": 11, "exercises/10-performance-and-scale-workbook.ipynb": 11,
    "notebooks/08-relationships-and-loading.ipynb": 11,
    "exercises/11-testing-and-capstone-workbook.ipynb": 10, "tests/test_progress.py": 10,
    "solutions/07-orm-sessions-solution.ipynb": 10, "tests/test_workbooks.py": 10,
}
# Seconds for one corpus answer, by exercise, from the same run (the rest take under 0.5 s).
CORPUS_EACH = {
    "l11-q3": 10.3, "l05-q4": 5.0, "l11-q4": 3.0, "l07": 2.7, "l05": 2.0, "l04": 1.9, "l00": 1.6,
    "l06-q3": 1.5, "l09-q5": 1.2, "l09-q4": 1.1, "l04-q5": 1.1, "l04-q4": 1.0, "l07-q3": 0.9,
    "l07-q2": 0.9, "l06-q4": 0.8, "l06-q2": 0.8, "l04-q3": 0.8, "l05-q1": 0.8, "l06": 0.8,
    "l11": 0.8, "l09": 0.8, "l04-q2": 0.7, "l06-q5": 0.6, "l08-q1": 0.6, "l07-q5": 0.6,
    "l06-q1": 0.6, "l04-q1": 0.6, "l07-q4": 0.5, "l08-q4": 0.5, "l00-q1": 0.5, "l03": 0.5,
}


def expected_seconds(unit: str) -> float:
    """How long a unit took last time: a file, a notebook, or one corpus answer."""
    if unit.startswith("tests/test_corpus.py::") and "[l" in unit:
        return CORPUS_EACH.get(corpus_unit(unit), 0.3)
    return SLOWEST.get(unit, 0)


def corpus_unit(nodeid: str) -> str:
    """"l06-q1" for a corpus test of lesson 06's q1, "l06" for one about the lesson as a whole."""
    parts = nodeid.split("[", 1)[1].rstrip("]").split("-")
    lesson = parts[0][:3]
    return f"{lesson}-{parts[1]}" if len(parts) > 1 and parts[1][:1] == "q" else lesson


@pytest.hookimpl(optionalhook=True)  # a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config, log):  # xdist's hook
    """With --dist loadscope: each corpus answer a unit of its own, and the slowest units first."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SlowestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope == "tests/test_corpus.py" and "[l" in nodeid:  # test_...[l06_sqlalchemy_...-q1-...]
                return nodeid  # each answer a unit of its own: they share no state
            return scope

        def _assign_work_unit(self, node) -> None:
            heaviest = max(self.workqueue, key=lambda s: (expected_seconds(s), len(self.workqueue[s])))
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return SlowestFirst(config, log)
