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
    # --- lesson 09 ---
    Explanation(
        r"'State' object has no attribute",
        "the app's lifespan did not run for this request",
        "What the lifespan puts in the app's state (an engine, a sessionmaker) is missing, so "
        "its start-up never ran, or its state never reached the request. httpx.ASGITransport "
        "sends requests only: run the lifespan with `async with LifespanManager(app) as "
        "manager:` and pass `ASGITransport(app=manager.app)`, not the bare app.",
    ),
    Explanation(
        r"on_event is deprecated",
        "@app.on_event is deprecated",
        "Start-up and shutdown code belongs in one lifespan function: `@asynccontextmanager "
        "async def lifespan(app): ...start-up...; yield {...state...}; ...shutdown...`, given as "
        "`FastAPI(lifespan=lifespan)`. Once lifespan= is set, on_event handlers are silently "
        "ignored.",
    ),
    Explanation(
        r"starlette\.testclient.*deprecated|install `?httpx2",
        "Starlette's TestClient",
        "TestClient is a synchronous client: it runs the app on an event loop of its own, in a "
        "thread, and blocks yours meanwhile, so connections made on your loop break under it "
        "('attached to a different loop'). In async code and notebooks, call the app with "
        "`httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app))` inside `async "
        "with LifespanManager(app) as manager:`.",
    ),
    Explanation(
        r"PendingRollbackError|rolled back due to a previous exception",
        "a session used again after a failed flush",
        "A flush or commit failed, and the session will do nothing more until the failed "
        "transaction is rolled back: `await session.rollback()` in the `except` block, or "
        "leave the session (`async with` closes it, which rolls back).",
    ),
    Explanation(
        r"IntegrityError|UNIQUE constraint failed|violates (unique|foreign key) constraint",
        "the database refused a write (a constraint)",
        "The row breaks a rule of the database: a unique key, a foreign key, NOT NULL. The "
        "statement failed and its transaction must be rolled back. In a route, catch "
        "IntegrityError where you commit, `await session.rollback()`, and answer `409 "
        "Conflict` (HTTPException); don't look the value up first instead, since another "
        "request can take it in between.",
    ),
    Explanation(
        r"ResponseValidationError",
        "the route returned something its response model cannot describe",
        "FastAPI checks what a route returns against its return annotation (or "
        "response_model). Returning None where an object is due usually means a missing "
        "`raise HTTPException(status_code=404)`; a missing field means the query or the schema "
        "is not what you think. The error's `loc` names the field.",
    ),
    # --- lesson 11 ---
    Explanation(
        r"ScopeMismatch.*anyio_backend|function scoped fixture anyio_backend",
        "an async fixture wider than its event loop",
        "anyio runs every async test and fixture on the loop of the `anyio_backend` fixture. A "
        "module- or session-scoped async fixture (an engine, a client) needs a loop that lives "
        "as long as it does: give `anyio_backend` the same or a wider scope, "
        "`@pytest.fixture(scope=\"session\") def anyio_backend(): return \"asyncio\"`.",
    ),
    Explanation(
        r"async def functions are not natively supported",
        "an async test that no plugin runs",
        "pytest itself cannot run an `async def` test: mark it `@pytest.mark.anyio` (anyio's "
        "plugin comes with FastAPI), or put `pytestmark = pytest.mark.anyio` at the top of the "
        "module.",
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
