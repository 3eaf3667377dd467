"""Errors the course explains in plain words instead of a traceback."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any


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
    refines: bool = False  # a narrower case of an earlier explanation: it wins when both match


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
    # --- lesson 04 ---
    Explanation(
        r"invalid input for query argument \$\d+: [\[(].*(got (list|tuple)\)|'(list|tuple)' object)",
        "a list bound where one value goes (`IN ($1)`)",
        "`IN ($1)` and `= $1` compare a column with one value, so asyncpg expects one value "
        "there, and it got a whole list. Bind the list as one array instead: "
        "`WHERE country = any($1::text[])` (`$1::int[]` for an integer column). One "
        "statement then serves every length of list, the empty one too.",
    ),
    Explanation(
        r"operator does not exist: [\w ]+ = [\w ]+\[\]",
        "one value compared with a whole array",
        "`column = $1::text[]` (or `IN ($1::text[])`) asks whether one value equals an entire "
        "array, and PostgreSQL has no such operator. Compare with each element: "
        "`WHERE column = any($1::text[])`.",
    ),
    Explanation(
        r"operator does not exist: [\w ]+ = [\w ]+",
        "two sides of `=` with different types",
        "PostgreSQL will not compare, say, a text column with an integer. With an array "
        "parameter, its element type must match the column: `= any($1::text[])` for a text "
        "column such as country, `= any($1::int[])` for an integer one such as customer_id.",
    ),
    Explanation(
        r"invalid input for query argument \$\d+",
        "a parameter of the wrong Python type",
        "asyncpg encodes each parameter as the type PostgreSQL expects in that place, and "
        "refuses a value of another type before the query runs ('22' where an integer goes, "
        "say). Convert it first: int(...), Decimal(...), a date object, and so on.",
    ),
    # --- lesson 06 ---
    Explanation(
        r"garbage collector is trying to clean up non-checked-in connection",
        "a connection that was never closed",
        "A connection was taken from an engine's pool and never given back; the garbage collector "
        "found it and closed it, rolling back whatever it was doing. Until then it counted as "
        "checked out, and enough of them exhaust the pool. Use `async with engine.connect() as "
        "conn:` or `async with engine.begin() as conn:`, which give the connection back on every path.",
    ),
    Explanation(
        r"No module named 'psycopg",
        "postgresql:// means psycopg",
        "In SQLAlchemy 2.1 a URL that starts `postgresql://` asks for the psycopg 3 driver, which "
        "the course does not install. Name the async driver: `postgresql+asyncpg://...` (the URLs "
        "from course.fresh_engine_url() already do; pass the URL object itself, not str(url), which "
        "hides the password).",
    ),
    Explanation(
        r"requires an async driver to be used|The loaded '\w+' is not async",
        "create_async_engine() with a sync driver",
        "create_async_engine() needs a driver that can await: `sqlite+aiosqlite://` for SQLite, "
        "`postgresql+asyncpg://` for PostgreSQL. A plain `sqlite://` URL loads pysqlite, the "
        "blocking sqlite3 module.",
    ),
    Explanation(
        r"MissingGreenlet.*\(from a sync engine\)",
        "MissingGreenlet from a sync engine",
        "create_engine() made a sync engine, but the URL names an async driver (aiosqlite, "
        "asyncpg), which can only run under `await`. In async code use create_async_engine(url) "
        "and `async with engine.connect() as conn: await conn.execute(...)`. (A sync engine on a "
        "sync driver would run, but block the event loop on every query.)",
        refines=True,
    ),
    Explanation(
        r"no such table",
        "a table this SQLite database does not have",
        "Check the name first. Then check which database the engine opened: a relative file path "
        "is relative to the working directory, and an in-memory SQLite database "
        "(`sqlite+aiosqlite://`) exists only inside one connection, so a second connection sees a "
        "new, empty database.",
    ),
    # --- lesson 07 ---
    Explanation(
        r"can't be used in 'await' expression",
        "`await` on something that is not awaitable",
        "`await` takes a coroutine, a task or a future; this one got a plain value (None, from a "
        "plain method). On an AsyncSession, `add()`, `add_all()`, `expunge()` and `expire()` only "
        "touch memory: call them without `await`. The methods that talk to the database, "
        "`get`, `execute`, `scalars`, `flush`, `commit`, `refresh`, `delete`, `close`, need it.",
    ),
    Explanation(
        r"is not bound to a Session",
        "an ORM object used after its session closed",
        "The object is detached: its session is closed, so SQLAlchemy cannot load the expired or "
        "unloaded attribute you read. Read what you need while the session is open, make the "
        "sessionmaker with expire_on_commit=False so a commit does not expire what you loaded, "
        "or load relationships up front with selectinload().",
    ),
    Explanation(
        r"A transaction is already begun on this Session",
        "session.begin() on a session that has already begun",
        "A session begins a transaction by itself at its first query (autobegin), so "
        "`async with session.begin():` after a query finds one already open. Start the block "
        "before the first query, use `async with Session.begin() as session:`, or end the open "
        "transaction with `await session.commit()` (or rollback()) first.",
    ),
    Explanation(
        r"PendingRollbackError|transaction has been rolled back due to a previous exception",
        "a session used after a failed flush",
        "A statement of this session failed, so its transaction is dead; every later call fails "
        "until `await session.rollback()`. Better: do the work in `async with session.begin():`, "
        "which rolls back for you when the error leaves the block.",
    ),
    # --- lesson 08 ---
    Explanation(
        r"unique\(\) method must be invoked on this Result",
        "joinedload() of a collection without unique()",
        "joinedload() on a one-to-many relationship joins the children into the parent's query, "
        "so each parent comes back once per child. SQLAlchemy will not hand out such rows until "
        "you remove the repeats: `(await session.scalars(stmt)).unique().all()`. Or load the "
        "collection with selectinload(), which needs no unique().",
    ),
    Explanation(
        r"is not available due to lazy='raise",
        "a lazy load refused by lazy='raise' or raiseload()",
        "The code read a relationship that its query had not loaded, and the relationship (or "
        "the query's raiseload option) forbids loading it on access. Load it with the query, "
        "`.options(selectinload(Parent.children))` or joinedload(), or, one object at a time, "
        "`await obj.awaitable_attrs.children`.",
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
    # PendingRollbackError: lesson 07's entry above
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
    # --- workshops on a shared server ---
    Explanation(
        r"too many clients already|remaining connection slots are reserved|too many connections for",
        "the PostgreSQL server has no free connection (max_connections)",
        "Every connection the server allows is in use: by your notebooks, or on a workshop "
        "server by everyone's. Shut down the kernels of notebooks you are not using (Kernel > "
        "Shut Down Kernel) and close pools you no longer need (`await pool.close()`, "
        "`await engine.dispose()`). On a workshop server, tell your instructor \"the course "
        "server has reached max_connections\".",
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
    if ("MissingGreenlet" in text and _raised_in(exc, "sqlalchemy/pool/")
            and not (_raised_in(exc, "sqlalchemy/orm/") or _raised_in(exc, "sqlalchemy/ext/asyncio/"))):
        text += " (from a sync engine)"  # a pool connecting, with no lazy load nor async engine on the way
    matches = [item for item in EXPLANATIONS if re.search(item.pattern, text, flags=re.IGNORECASE)]
    return next((item for item in matches if item.refines), matches[0] if matches else None)


_last_error: BaseException | None = None


def remember(exc: BaseException) -> None:
    """Keep an error for `explain()` with no argument: the one a check saw in the learner's
    code, or one a cell raised (the notebook's exception handler passes those on)."""
    global _last_error
    _last_error = exc


def _last_raised() -> BaseException | None:
    """The error to explain when none is given: the last one remembered, else the last one
    Python's interactive mode recorded (sys.last_exc, sys.last_value before Python 3.12)."""
    if _last_error is not None:
        return _last_error
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


def _show_explanation(item: Explanation) -> None:
    """The 💡 paragraph: one line of text, and Markdown in JupyterLab (wrapped between words)."""
    from course.display import markdown_line, show

    line = f"💡 {item.title}. {item.text}"
    show(line, markdown_line(line))


def explain(exc: BaseException | None = None) -> None:
    """Print one paragraph about an exception (by default, the last error a cell raised or a
    check reported): what it means and the fix."""
    if exc is None:
        exc = _last_raised()
        if exc is None:
            print("No error to explain yet: `course.explain()` explains the last error a cell "
                  "raised or a check reported; `course.explain(exc)` explains the one you pass.")
            return
    if isinstance(exc, CourseError):
        print(f"⚠️ {exc.problem}\nFix: {exc.fix}")
        return
    item = explanation_for(exc)
    if item is None:
        print(f"{type(exc).__name__}: {exc}\n(No course explanation for this one; read the message above.)")
    else:
        _show_explanation(item)


def install_ipython_handler() -> None:
    """In Jupyter: show CourseError as its message only, explain the known async errors, and
    remember every error a cell raises for `course.explain()`."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell: Any, etype: type[BaseException], value: BaseException,
                tb: TracebackType | None, tb_offset: int | None = None) -> None:
        remember(value)
        if isinstance(value, CourseError):
            print(f"⚠️ {value.problem}\nFix: {value.fix}")
            return None
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        item = explanation_for(value)
        if item is not None:
            _show_explanation(item)
        return None

    shell.set_custom_exc((Exception,), handler)
