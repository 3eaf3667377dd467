"""The figures the course publishes, measured on this machine (design section 9).

    .venv/bin/python benchmarks/figures.py             # databases and checks, ~15 s
    .venv/bin/python benchmarks/figures.py --notebooks # also each notebook's run time in a fresh kernel
    .venv/bin/python benchmarks/figures.py --suite     # also the whole test suite (as `make test` runs it)

Everything runs in a temporary COURSE_HOME, so your own databases and progress are untouched.
Lessons quote ratios measured in their own cells; this script gives the infrastructure's times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM_JOIN = """
import time, course.postgres as pg
t = time.perf_counter(); pg.start_local(); print(time.perf_counter() - t)
"""


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """The median wall time of fn() over `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def database_figures() -> list[tuple[str, float, str]]:
    from course import postgres
    from course.sqlite import fresh_sqlite, template

    rows = [("SQLite template build (once per data version)", timed(template), "")]
    rows.append(("fresh SQLite copy", timed(lambda: fresh_sqlite("bench"), repeat=20), "< 0.2 s"))
    rows.append(("PostgreSQL first start (initdb + start)", timed(postgres.start_local), ""))
    first = timed(lambda: asyncio.run(postgres.fresh_postgres("bench")))
    rows.append(("first fresh database (Chinook template via COPY + clone)", first, ""))
    postgres.stop_local()
    time.sleep(0.5)
    rows.append(("PostgreSQL cold start (stopped cluster)", timed(postgres.start_local), "< 2 s"))
    joins = [float(subprocess.run([sys.executable, "-c", WARM_JOIN], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout) for _ in range(5)]
    rows.append(("PostgreSQL warm join from a new process", statistics.median(joins), ""))
    names = iter(range(100))
    rows.append(("fresh database cloned from the template",
                 timed(lambda: asyncio.run(postgres.fresh_postgres(f"bench{next(names)}")), repeat=10), "< 0.2 s"))
    rows.append(("the same, re-created under an existing name (drop + clone)",
                 timed(lambda: asyncio.run(postgres.fresh_postgres("bench")), repeat=10), ""))
    return rows


def check_figures() -> list[tuple[str, float, str]]:
    from course.build import read_notebook, solution_source
    from course.paths import SOLUTIONS
    from course.workbooks import all_exercises

    rows = []
    for ex in all_exercises():
        source = solution_source(ex.lesson, ex.function)
        if source.startswith("("):  # "(no solutions notebook ...)": a lesson being written
            continue
        # The workbook's first code cell holds its imports; the solution cell needs them.
        workbook = read_notebook(next(SOLUTIONS.glob(f"{ex.lesson}-*.ipynb")))
        imports = next(cell.source for cell in workbook.cells if cell.cell_type == "code")
        namespace: dict[str, object] = {"__name__": "solution"}
        exec(imports + "\n" + source, namespace)  # noqa: S102 -- our own solution notebook
        answer = namespace[ex.function]
        seconds = timed(lambda ex=ex, answer=answer: asyncio.run(ex.evaluate(answer)), repeat=3)
        rows.append((f"check {ex.lesson}.{ex.name} ({ex.function}) on its solution", seconds, "< 1 s"))
    return rows


def notebook_figures() -> list[tuple[str, float, str]]:
    from course.build import execute

    rows = []
    for folder in ("notebooks", "solutions", "exercises"):
        for path in sorted((ROOT / folder).glob("[0-9][0-9]-*.ipynb")):
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / folder / path.name
                copy.parent.mkdir()
                copy.write_bytes(path.read_bytes())
                limit = "< 30 s" if path.name[:2] in ("00", "01", "02") else "< 60 s"
                rows.append((f"{folder}/{path.name} in a fresh kernel", timed(lambda c=copy: execute(c)), limit))
    return rows


def suite_figure() -> list[tuple[str, float, str]]:
    def run() -> None:
        subprocess.run(["make", "test"], cwd=ROOT, check=True, capture_output=True)

    return [("make test with .venv present", timed(run), "< 3 min")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", action="store_true", help="time every notebook in a fresh kernel")
    parser.add_argument("--suite", action="store_true", help="time `make test`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as home:
        os.environ["COURSE_HOME"] = home
        os.environ["COURSE_PROGRESS"] = str(Path(home) / "progress.json")
        os.environ.pop("DATABASE_URL", None)
        rows = database_figures() + check_figures()
        if args.notebooks:
            rows += notebook_figures()
        from course import postgres

        postgres.stop_local()
    if args.suite:
        rows += suite_figure()
    width = max(len(name) for name, _, _ in rows)
    print(f"{'figure':<{width}}  {'seconds':>8}  target")
    for name, seconds, target in rows:
        print(f"{name:<{width}}  {seconds:>8.3f}  {target}")
    print(f"\nPython {sys.version.split()[0]} on {os.cpu_count()} cores; medians where repeated.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
