"""Run reference solutions through their checks many times and count the verdicts.

    .venv/bin/python benchmarks/repeat_checks.py 01.q5 02.q4 02.q5 --times 20

A check that is sound on a busy machine accepts its solution every time (or says it was too busy
to judge); run it while other work takes every core now and then, which is where timing mistakes
show. Prints one line per exercise and exits 1
if any run was not "correct".
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import collections
import contextlib
import inspect
import io
import random
import re
import sys
import threading
import traceback
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course.checking.solutions import solution_source
from course.tools.workbooks import all_exercises

PRELUDE = """
import asyncio, inspect, json, threading, time
import aiosqlite, asyncpg
import course
from course import synthetic
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Any
"""


def _definitions(lesson: str) -> list[str]:
    """The solution notebook's set-up cells, in order: every code cell that neither holds a
    solution nor calls an exercise (`ex.qN`). Cells with top-level await run too (lesson 06
    reflects its tables in one, lesson 11 prepares the capstone's database in one)."""
    from course import registry
    from course.checking.solutions import read_notebook

    cells = [c.source for c in read_notebook(registry.lesson(lesson).solution).cells if c.cell_type == "code"]
    return [s for s in cells if "SOLUTION" not in s and not re.search(r"\bex\.q\d", s)]


_SETUP_LOOP: asyncio.AbstractEventLoop | None = None  # the set-up cells' loop, in a thread of its own


def _setup_loop() -> asyncio.AbstractEventLoop:
    """A loop that stays open while the script runs, usable whether or not the caller is inside
    a running loop (main() is)."""
    global _SETUP_LOOP
    if _SETUP_LOOP is None:
        _SETUP_LOOP = asyncio.new_event_loop()
        threading.Thread(target=_SETUP_LOOP.run_forever, daemon=True).start()
    return _SETUP_LOOP


def _run_cell(source: str, namespace: dict, name: str) -> None:
    """Run one cell's source as a notebook would, top-level await included, its prints hidden."""
    # dont_inherit: this file's `from __future__ import annotations` must not turn the
    # solution's annotations into strings, which FastAPI cannot resolve for a local alias
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    with contextlib.redirect_stdout(io.StringIO()):
        if code.co_flags & inspect.CO_COROUTINE:
            coroutine = eval(code, namespace)  # the course's own notebook code
            asyncio.run_coroutine_threadsafe(coroutine, _setup_loop()).result()
        else:
            exec(code, namespace)  # the course's own solution code


def reference(lesson: str, function: str):
    """The solution's function, defined from its cell in solutions/ after the notebook's set-up."""
    module = types.ModuleType(f"solution_{lesson}_{function}")  # a real module: pydantic
    sys.modules[module.__name__] = module  # resolves a schema's annotations through it
    for source in (PRELUDE, *_definitions(lesson)):
        with contextlib.suppress(NameError):  # a cell that tries the solutions out together
            _run_cell(source, module.__dict__, f"<{module.__name__}>")
    _run_cell(solution_source(lesson, function), module.__dict__, f"<{module.__name__}>")
    return module.__dict__[function]


async def _evaluate(ex, answer) -> tuple[str, str]:
    """The status and line of one run, or "exception" and where it left the check: a check
    must always end in its own line, whatever happens inside it."""
    try:
        outcome = await ex.evaluate(answer)
    except BaseException as exc:  # counted, never hidden
        task = asyncio.current_task()
        while task is not None and task.cancelling():
            task.uncancel()  # a cancellation that escaped the check must not end this script
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
        return "exception", f"{type(exc).__name__} at {where}"
    return outcome.status, outcome.line


async def main(keys: list[str], times: int, limits: tuple[float, float] | None = None,
               each: bool = False) -> int:
    exercises = {ex.key: ex for ex in all_exercises()}
    failed = 0
    chance = random.Random(4)
    for key in keys:
        ex = exercises[key]
        answer = reference(ex.lesson, ex.function)
        verdicts: collections.Counter[str] = collections.Counter()
        messages = set()
        limit = ex.limit
        for _ in range(times):
            if limits is not None:  # a time limit that lands anywhere inside the check
                ex.limit = round(chance.uniform(*limits), 2)
            status, line = await _evaluate(ex, answer)
            verdicts[status] += 1
            if each:  # every run as it ends: a run cut short still leaves its figures
                print(f"  {key} run {sum(verdicts.values())}: {status}", flush=True)
            if status != "correct":
                messages.add(line)
        ex.limit = limit
        failed += times - verdicts["correct"]
        print(f"{key}: {verdicts['correct']} of {times} correct"
              + "".join(f"; {n} {status}" for status, n in verdicts.items() if status != "correct"))
        for line in sorted(messages):
            print(f"    {line}")
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="+", help="exercises as NN.qK")
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--limits", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="a random time limit per run, between LOW and HIGH seconds, so that "
                             "it expires at every point of the check (❌ time limit or ⏳ are "
                             "then expected, never an exception)")
    parser.add_argument("--each", action="store_true", help="print every run's verdict as it ends")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.keys, args.times, args.limits, args.each)))
