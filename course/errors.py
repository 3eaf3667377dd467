"""Errors the course explains in plain words instead of a traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass


class CourseError(Exception):
    """A problem with the set-up, told in one short paragraph with the fix."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}\nFix: {fix}")
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Explanation:
    pattern: str
    title: str
    text: str


# Each pattern is matched against "ExceptionType: message".
EXPLANATIONS = [
    Explanation(
        r"asyncio\.run\(\) cannot be called from a running event loop",
        "asyncio.run() inside a running loop",
        "Jupyter already runs an event loop, and asyncio.run() wants to start a new one. "
        "In a notebook, write `await main()` at the top level of a cell instead. "
        "Keep asyncio.run() (or asyncio.Runner) for scripts.",
    ),
    Explanation(
        r"coroutine .* was never awaited|'coroutine'|coroutine object",
        "a coroutine that was never awaited",
        "Calling an async function only creates a coroutine object; nothing runs until you "
        "`await` it. Put `await` in front of the call (or pass it to asyncio.create_task).",
    ),
    Explanation(
        r"MissingGreenlet|greenlet_spawn has not been called",
        "MissingGreenlet: lazy loading under asyncio",
        "SQLAlchemy tried to run SQL implicitly, usually by loading a relationship or an "
        "expired attribute, outside an await. Load it up front with selectinload()/joinedload(), "
        "use `await obj.awaitable_attrs.name`, or set expire_on_commit=False on the sessionmaker.",
    ),
    Explanation(
        r"another operation is in progress",
        "one asyncpg connection used by two tasks at once",
        "An asyncpg connection runs one query at a time. Tasks started with gather() or "
        "create_task() must each use their own connection: acquire one per task from a pool "
        "(`async with pool.acquire() as conn:`).",
    ),
    Explanation(
        r"\bisce\b|concurrent operations are not permitted|This session is provisioning a new connection",
        "one AsyncSession shared between tasks",
        "An AsyncSession is not safe to share between concurrent tasks. Give every task its "
        "own session: `async with sessionmaker() as session:` inside the task.",
    ),
    Explanation(
        r"QueuePool limit of size \d+ overflow \d+ reached|TimeoutError.*pool",
        "the connection pool is exhausted",
        "Every pooled connection is checked out and none came back in time. Close sessions "
        "and connections promptly (`async with`), bound concurrency with a Semaphore, or size "
        "the pool (pool_size, max_overflow) for the work you run at once.",
    ),
    Explanation(
        r"Event loop is closed",
        "the event loop is closed",
        "Something created with one event loop (a connection, an engine, a client) was used "
        "after that loop ended, often after asyncio.run() returned. Create and close such "
        "objects inside the same running loop, and `await engine.dispose()` before it ends.",
    ),
    Explanation(
        r"attached to a different loop|different event loop|Future .* attached",
        "an object used from a different event loop",
        "A connection, pool, lock or future belongs to the loop it was made on. Don't share "
        "them between asyncio.run() calls, threads or test fixtures with another loop scope: "
        "create them on the loop that uses them.",
    ),
    # --- lesson 10 ---
    Explanation(
        r"The unique\(\) method must be invoked on this Result",
        "joinedload of a collection without unique()",
        "A joined eager load of a collection returns the parent row once per child, and "
        "SQLAlchemy will not guess how to merge them. Call .unique() on the result first: "
        "`(await session.scalars(stmt)).unique().all()`. (selectinload needs no unique(), but "
        "runs a second SELECT.)",
    ),
]


def _raised_in(exc: BaseException, fragment: str) -> bool:
    """Whether the traceback of exc passes through a file whose path contains fragment."""
    tb = exc.__traceback__
    while tb is not None:
        if fragment in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


def explanation_for(exc: BaseException) -> Explanation | None:
    """The explanation that matches this exception, if there is one."""
    text = f"{type(exc).__name__}: {exc}"
    code = getattr(exc, "code", None)
    if code:
        text += f" ({code})"
    if isinstance(exc, TimeoutError) and _raised_in(exc, "asyncpg/pool.py"):
        text += " (waiting for a pool connection)"  # asyncpg's acquire timeout has no message
    for item in EXPLANATIONS:
        if re.search(item.pattern, text, flags=re.IGNORECASE):
            return item
    return None


_last_checked: BaseException | None = None


def remember(exc: BaseException) -> None:
    """Keep the error a check saw in the learner's code, for `explain()` with no argument."""
    global _last_checked
    _last_checked = exc


def explain(exc: BaseException | None = None) -> None:
    """Print one paragraph about an exception (by default, the last one a check reported):
    what it means and the fix."""
    if exc is None:
        if _last_checked is None:
            print("No error to explain yet: pass one, `course.explain(exc)`, or run a check first.")
            return
        exc = _last_checked
    item = explanation_for(exc)
    if item is None:
        print(f"{type(exc).__name__}: {exc}\n(No course explanation for this one; read the message above.)")
    else:
        print(f"💡 {item.title}. {item.text}")


def install_ipython_handler() -> None:
    """In Jupyter: show CourseError as its message only, and explain the known async errors."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell, etype, value, tb, tb_offset=None):  # noqa: ANN001
        if isinstance(value, CourseError):
            print(f"⚠️ {value.problem}\nFix: {value.fix}")
            return None
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        item = explanation_for(value)
        if item is not None:
            print(f"💡 {item.title}. {item.text}")
        return None

    shell.set_custom_exc((Exception,), handler)
