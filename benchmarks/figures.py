"""The figures the course publishes, measured on this machine.

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
import time, course.db.postgres as pg
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
    from course.db import postgres
    from course.db.sqlite import fresh_sqlite, template

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
    from course.checking.solutions import solution_source
    from course.tools.workbooks import all_exercises

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from repeat_checks import reference  # the solution's function, with its notebook's definitions

    rows = []
    for ex in all_exercises():
        if solution_source(ex.lesson, ex.function).startswith("("):  # "(no solutions notebook ...)"
            continue
        answer = reference(ex.lesson, ex.function)
        seconds = timed(lambda ex=ex, answer=answer: asyncio.run(ex.evaluate(answer)), repeat=3)
        wrong, right = corpus_counts(ex.lesson, ex.name)
        rows.append((f"check {ex.lesson}.{ex.name} ({ex.function}) on its solution; corpus "
                     f"{wrong} wrong / {right} correct", seconds, "< 5 s"))
    return rows


def corpus_counts(lesson: str, exercise: str) -> tuple[int, int]:
    """How many wrong and differently-correct answers tests/corpus/ holds for one exercise."""
    import importlib

    from course import registry
    from tests.corpus import CorrectAnswer, WrongAnswer

    wrong = right = 0
    for value in vars(importlib.import_module(registry.lesson(lesson).corpus_module)).values():
        if getattr(value, "exercise", None) == exercise:
            wrong += isinstance(value, WrongAnswer)
            right += isinstance(value, CorrectAnswer)
    return wrong, right


async def _endpoint_ratios() -> list[tuple[str, float, str]]:
    """Lesson 10's claim: 200 concurrent requests of 50 ms simulated I/O, best of 3 interleaved."""
    import anyio.to_thread
    import httpx
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/sync")
    def sync_route() -> None:
        time.sleep(0.05)

    @app.get("/async")
    async def async_route() -> None:
        await asyncio.sleep(0.05)

    @app.get("/blocking")
    async def blocking_route() -> None:
        time.sleep(0.05)  # noqa: ASYNC251 -- the blocking route the lesson measures

    best: dict[str, float] = {}
    n = {"/sync": 200, "/async": 200, "/blocking": 10}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        for _ in range(3):
            for path, count in n.items():
                start = time.perf_counter()
                await asyncio.gather(*(client.get(path) for _ in range(count)))
                best[path] = max(best.get(path, 0.0), count / (time.perf_counter() - start))
    tokens = anyio.to_thread.current_default_thread_limiter().total_tokens
    return [("async def + await / def, requests per second", best["/async"] / best["/sync"], "> 1"),
            ("def / async def that blocks, requests per second", best["/sync"] / best["/blocking"], "> 5"),
            (f"def: measured / Little's law ({tokens} threads / 50 ms)", best["/sync"] / (tokens / 0.05), "<= 1")]


async def _driver_ratios() -> list[tuple[str, float, str]]:
    """Lesson 10's table, workload B: 1000 lookups by key, contenders interleaved per lookup."""
    import asyncpg
    from sqlalchemy import bindparam, select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import load_only

    from course.db.engines import fresh_engine_url
    from course.models import Track

    url = await fresh_engine_url("bench-drivers", "postgresql")
    columns = (Track.track_id, Track.name, Track.unit_price)
    core_one = select(*columns).where(Track.track_id == bindparam("i"))
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    engine = create_async_engine(url)
    try:
        async with engine.connect() as core, async_sessionmaker(engine)() as session:
            lookups = {
                "asyncpg": lambda i: conn.fetchrow("SELECT track_id, name, unit_price FROM track WHERE track_id = $1", i),
                "Core select()": lambda i: core.execute(core_one, {"i": i}),
                "ORM get()": lambda i: session.get(Track, i, options=[load_only(*columns)]),
            }
            times: dict[str, list[float]] = {who: [] for who in lookups}
            for k in range(1000):
                names = list(lookups)[k % 3:] + list(lookups)[:k % 3]
                for who in names:
                    start = time.perf_counter()
                    await lookups[who]((k * 7919) % 3503 + 1)
                    times[who].append(time.perf_counter() - start)
                session.expunge_all()
    finally:
        await conn.close()
        await engine.dispose()
    base = statistics.median(times["asyncpg"])
    return [(f"{who} / raw asyncpg, per lookup (median)", statistics.median(times[who]) / base, "> 1")
            for who in ("Core select()", "ORM get()")]


def content_figures() -> list[tuple[str, float, str]]:
    """Ratios behind lesson 10's claims."""
    return asyncio.run(_endpoint_ratios()) + asyncio.run(_driver_ratios())


def notebook_figures() -> list[tuple[str, float, str]]:
    from course.tools.build import execute

    rows = []
    for folder in ("notebooks", "solutions", "exercises"):
        for path in sorted((ROOT / folder).glob("[0-9][0-9]-*.ipynb")):
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / folder / path.name
                copy.parent.mkdir()
                copy.write_bytes(path.read_bytes())
                limit = {"00": "< 30 s", "01": "< 30 s", "02": "< 30 s", "10": "< 90 s"}.get(path.name[:2], "< 60 s")
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
        ratios = content_figures()
        if args.notebooks:
            rows += notebook_figures()
        from course.db import postgres

        postgres.stop_local()
    if args.suite:
        rows += suite_figure()
    width = max(len(name) for name, _, _ in rows)
    print(f"{'figure':<{width}}  {'seconds':>8}  target")
    for name, seconds, target in rows:
        print(f"{name:<{width}}  {seconds:>8.3f}  {target}")
    width = max(width, *(len(name) for name, _, _ in ratios))
    print(f"\n{'ratio (lesson 10)':<{width}}  {'ratio':>8}  claim")
    for name, ratio, claim in ratios:
        print(f"{name:<{width}}  {ratio:>8.2f}  {claim}")
    print(f"\nPython {sys.version.split()[0]} on {os.cpu_count()} cores; medians where repeated.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
