"""What the checks of lesson 06 share: running the learner's code, and the tables they make."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, Numeric, Table
from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from course.checking.checks import FORGOT_AWAIT, LearnerError, Wrong, call
from course.checking.quiet import quiet_wrong
from course.checking.sync_driver import SyncConnects
from course.probes import ConnectionLeaks, checked_out

LIMIT = 90.0  # generous: two fresh databases per check, on a machine that may be busy


# --- running the learner's code -----------------------------------------------------------

SYNC_DRIVER = ("your code opened a sync sqlite3 connection on the event loop's thread (a sync "
               "engine from create_engine(), or sqlite3 itself): every query then blocks the loop "
               "and every other task waits. Use the AsyncConnection or AsyncEngine you are given, "
               "or create_async_engine() with an async driver (sqlite+aiosqlite, postgresql+asyncpg).")


def _never_closed(count: int, failure: LearnerError | None = None) -> str:
    """What connections the learner's code never closed cost."""
    when = "returned" if failure is None else f"raised {type(failure.__cause__).__name__}"
    return (f"{count} connection(s) your code opened were never closed: they were still checked "
            f"out of the pool when your function {when} (the check closed them). Use `async with "
            "engine.connect() as conn:` (or `engine.begin()`), which gives the connection back "
            "to the pool even on error; connections nobody closes run the pool dry.")


async def run(fn: Any, *args: Any) -> Any:
    """call() the learner's function, watching for a sync driver and for connections it never
    closed (closed here, quietly), and translating the usual async mistakes of SQLAlchemy into
    plain words."""
    try:
        return await _watched(fn, *args)
    except Wrong as exc:
        raise quiet_wrong(exc) from None


async def _watched(fn: Any, *args: Any) -> Any:
    leaks, sync = ConnectionLeaks(), SyncConnects()
    failure: LearnerError | None = None
    try:
        with sync, leaks:
            result = await call(fn, *args)
    except LearnerError as exc:
        failure = exc
    finally:
        left = await leaks.settle()
        if sync.seen:
            raise Wrong(SYNC_DRIVER)
    if left:  # on an error too: a connection opened without `async with` stays out
        raise Wrong(_never_closed(left, failure))
    if failure is not None:
        if (plain := _translated(failure)) is not failure:
            raise plain from None
        raise failure
    return result


def _translated(exc: LearnerError) -> Exception:
    """A plain-words Wrong for the usual async mistakes of SQLAlchemy, or the error itself."""
    cause = exc.__cause__
    if isinstance(cause, TypeError | AttributeError) and (
            "coroutine" in str(cause) or "GeneratorStartableContext" in str(cause)):
        return Wrong(FORGOT_AWAIT)
    if isinstance(cause, MissingGreenlet) or (
            isinstance(cause, StatementError) and isinstance(cause.orig, MissingGreenlet)):
        return Wrong("MissingGreenlet: a sync engine (create_engine) was given an async driver's "
                     "URL, so it cannot await. Use create_async_engine(url), and `async with "
                     "engine.connect()` or `engine.begin()` around `await conn.execute(...)`.")
    if isinstance(cause, ModuleNotFoundError) and "psycopg" in str(cause):
        return Wrong("`postgresql://` means the psycopg driver in SQLAlchemy 2.1, which the course "
                     "does not install: keep the URL's `postgresql+asyncpg` driver (pass the URL "
                     "object you were given, unchanged).")
    return exc


# --- what the checks read and make ---------------------------------------------------------

async def reflect(engine: AsyncEngine) -> MetaData:
    """The database's tables, as the workbook reflects them."""
    metadata = MetaData()
    async with engine.connect() as conn:
        await conn.run_sync(metadata.reflect)
    return metadata


def leaked(engine: AsyncEngine, what: str) -> None:
    """A Wrong when connections are still checked out of the engine's pool after `what`."""
    if left := checked_out(engine):
        raise Wrong(f"{left} connection(s) were still checked out of the engine's pool after "
                    f"{what} returned: use `async with engine.connect() as conn:` (or "
                    "`engine.begin()`), which gives the connection back even on error.")


def lines_table(metadata: MetaData, name: str = "line_big") -> Table:
    """The synthetic invoice lines' table (course.synthetic), on any backend."""
    return Table(name, metadata,
                 Column("invoice_line_id", Integer, primary_key=True, autoincrement=False),
                 Column("invoice_id", Integer, nullable=False),
                 Column("track_id", Integer, nullable=False),
                 Column("unit_price", Numeric(10, 2), nullable=False),
                 Column("quantity", Integer, nullable=False))


async def made(engine: AsyncEngine, table: Table) -> Table:
    """The table, created in the engine's database."""
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    return table
