"""q5: own the connection: dict rows, closed on every path."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from course.checking.cancelling import paused_or_done
from course.checking.checks import Exercise, LearnerError, Wrong
from course.db.sqlite import fresh_sqlite

from ._common import WORKER, _is_closed, _pasted_into_sql, _Pause, _run

CUSTOMERS_SQL = """
    SELECT customer_id, first_name, last_name, email FROM customer
    WHERE country = ? ORDER BY last_name, first_name
"""


COUNTRY_HOSTILE = ("O'Brien", "x' OR '1'='1")  # no customer lives there: both give []


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if WORKER in t.name and t.is_alive()}


@asynccontextmanager
async def _recording_connect() -> AsyncIterator[list[aiosqlite.Connection]]:
    """Record every connection aiosqlite.connect makes meanwhile; close any left open."""
    opened: list[aiosqlite.Connection] = []
    real = aiosqlite.connect

    def connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        conn = real(*args, **kwargs)
        opened.append(conn)
        return conn

    aiosqlite.connect = connect
    try:
        yield opened
    finally:
        aiosqlite.connect = real
        for conn in opened:
            if conn._connection is not None:  # the check cleans up a leak
                await conn.close()


async def _left_open(opened: list[aiosqlite.Connection], before: set[threading.Thread]) -> int:
    """How many connections the learner's call left open (waits briefly for threads to end)."""
    if opened:
        return sum(not _is_closed(conn) for conn in opened)
    for _ in range(100):  # `from aiosqlite import connect` escapes the recorder: watch threads
        if not (_workers() - before):
            return 0
        await asyncio.sleep(0.01)
    return len(_workers() - before)


class _RecordedCursor(sqlite3.Cursor):
    """A sqlite3 cursor that notes the SQL it runs on its _Recorded connection."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().executescript(sql)


class _Recorded(sqlite3.Connection):
    """A sqlite3 connection (under aiosqlite or used directly) that notes the thread that
    opened it, whether it was closed, and the SQL run through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.thread = threading.get_ident()
        self.closed_here = False
        self.sql: list[str] = []

    def close(self) -> None:
        self.closed_here = True
        super().close()

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:
        return super().cursor(factory or _RecordedCursor)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.cursor().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.cursor().executescript(sql)


@asynccontextmanager
async def _recording_sqlite3(pause: _Pause | None = None) -> AsyncIterator[list[_Recorded]]:
    """Record every sqlite3 connection opened meanwhile, by aiosqlite or directly. Given a
    _Pause, the first statement run on them waits until the check releases it."""
    opened: list[_Recorded] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if "factory" in kwargs:
            return real(*args, **kwargs)
        conn = real(*args, factory=_Recorded, **kwargs)
        if pause is not None:
            conn.set_progress_handler(pause.progress, 20)
        opened.append(conn)
        return conn

    sqlite3.connect = connect
    try:
        yield opened
    finally:
        sqlite3.connect = real


SYNC_SQLITE = ("{what} opened a plain sqlite3 connection on the event loop's thread. sqlite3 is "
               "synchronous: every query blocks the loop, and nothing else runs meanwhile. Use "
               "aiosqlite, `async with aiosqlite.connect(path) as db:`, which runs sqlite3 in a "
               "thread of its own.")
SQLITE3_LEFT_OPEN = ("{what} left a sqlite3 connection open. sqlite3's `with conn:` commits or "
                     "rolls back, but does not close; use `async with aiosqlite.connect(path) as "
                     "db:`, which closes it on every path.")
BIND_COUNTRY = "`WHERE country = ?` in the SQL, and `(country,)` in the parameters"


def _judge_sqlite3(recorded: list[_Recorded], what: str, loop_thread: int, country: str | None) -> None:
    if any(conn.thread == loop_thread for conn in recorded):
        raise Wrong(SYNC_SQLITE.format(what=what))
    if any(not conn.closed_here for conn in recorded):
        raise Wrong(SQLITE3_LEFT_OPEN.format(what=what))
    if country and len(country) > 1 and any(
            country.casefold() in sql.casefold() for conn in recorded for sql in conn.sql):
        raise _pasted_into_sql(what, country, BIND_COUNTRY)


async def _customers_cancelled(customers_in, path: Path) -> None:
    """Cancel a call while its query runs, as a timeout would: the connection must be closed,
    and the cancellation must reach the caller."""
    what = "customers_in(path, 'Canada')"
    pause = _Pause()
    before = _workers()
    open_at_return: list[int] = []
    async with _recording_connect() as opened, _recording_sqlite3(pause) as recorded:

        async def run() -> Any:
            """The learner's call, noting how many connections were open as it ended."""
            try:
                return await _run(customers_in, path, "Canada")
            finally:
                open_at_return.append(sum(not conn.closed_here for conn in recorded))

        task = asyncio.ensure_future(run())
        try:
            if await paused_or_done(task, pause.started):
                task.cancel()
                # The query stays paused for a few turns of the loop: a call that returns now
                # returns with its connection still open in a worker thread. (A correct one
                # waits for the close, which waits for the query: it cannot end meanwhile.)
                for _ in range(50):
                    if task.done():
                        break
                    await asyncio.sleep(0)
        finally:
            pause.release.set()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        left = await _left_open(opened, before)
        for _ in range(100):  # a worker thread the cancelled call started may still be closing
            if all(conn.closed_here for conn in recorded):
                break
            await asyncio.sleep(0.01)
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not pause.started.is_set():
        raise Wrong(f"{what} finished without running a query on the connections it opened.")
    if any(not conn.closed_here for conn in recorded):
        left = left or 1
    if left:
        raise Wrong(f"cancelled during its query (as a timeout would), {what} left its "
                    "connection open: `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException). `async with aiosqlite.connect(path) as "
                    "db:` (or `finally: await db.close()`) closes it on every path.")
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled during its query (as a timeout would), {what} returned "
                    f"{outcome!r}: it swallowed the CancelledError. Close the connection, and "
                    "let the cancellation reach the caller.")
    if any(open_at_return):
        raise Wrong(f"cancelled during its query (as a timeout would), {what} let the "
                    "cancellation through while its connection was still open: the query went "
                    "on in a worker thread, and the connection closed only later. "
                    "asyncio.to_thread stops waiting when cancelled; it does not stop the "
                    "thread. Use `async with aiosqlite.connect(path) as db:`, whose close waits "
                    "for the query, or wait for the thread to finish before re-raising.")


def _broken_copy() -> Path:
    """A Chinook copy without its customer table, so the query fails."""
    path = fresh_sqlite("check-03-q5-broken")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE customer")
    conn.close()
    return path


# Two more Canadians named Mitchell, Zoe stored before Adam: ordered by last_name alone, they
# come out in storage order, not by first name.
MORE_MITCHELLS = [(60, "Zoe", "Mitchell", "Canada", "zoe.mitchell@example.com"),
                  (61, "Adam", "Mitchell", "Canada", "adam.mitchell@example.com")]


async def _check_customers_in(customers_in) -> str:
    path = fresh_sqlite("check-03-q5")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO customer (customer_id, first_name, last_name, country, email) "
                         "VALUES (?, ?, ?, ?, ?)", MORE_MITCHELLS)
    async with aiosqlite.connect(path) as observer:
        observer.row_factory = aiosqlite.Row
        loop_thread = threading.get_ident()
        for country in ("Canada", "Ireland", "Atlantis", *COUNTRY_HOSTILE, "Canada"):
            what = f"customers_in(path, {country!r})"
            before = _workers()
            async with _recording_connect() as opened, _recording_sqlite3() as recorded:
                try:
                    got = await _run(customers_in, path, country)
                except LearnerError as exc:
                    _judge_sqlite3(recorded, what, loop_thread, country)
                    if "'" in country:
                        raise Wrong(f"the quote in {country!r} broke your query ({exc}): the "
                                    "country became part of the SQL. Bind it: "
                                    f"{BIND_COUNTRY}.") from None
                    raise
                left = await _left_open(opened, before)
            _judge_sqlite3(recorded, what, loop_thread, country)
            if left:
                raise Wrong(f"{what} left its connection open (its thread is still running). "
                            "Open it with `async with aiosqlite.connect(path) as db:`, which "
                            "closes it on every path.")
            expected = [dict(r) for r in await observer.execute_fetchall(CUSTOMERS_SQL, (country,))]
            if not isinstance(got, list):
                raise Wrong(f"{what} should return a list of dicts, not {type(got).__name__}.")
            if got and not all(isinstance(r, dict) for r in got):
                raise Wrong(f"{what} returned {type(got[0]).__name__} rows, not dicts. Set a "
                            "row factory that builds dicts (or convert each sqlite3.Row with "
                            "dict(row)).")
            if got == expected:
                continue
            if got and expected and set(got[0]) != set(expected[0]):
                raise Wrong(f"each dict should have the keys customer_id, first_name, last_name "
                            f"and email; yours has {sorted(got[0])}.")
            if sorted(map(repr, got)) == sorted(map(repr, expected)):
                raise Wrong(f"{what} has the right customers in the wrong order: ORDER BY "
                            "last_name, first_name.")
            raise Wrong(f"{what} returned {len(got)} customers; expected {len(expected)}.")

        broken = _broken_copy()
        before = _workers()
        async with _recording_connect() as opened, _recording_sqlite3() as recorded:
            try:
                got = await _run(customers_in, broken, "Canada")
            except LearnerError:
                got = None
                failed = True
            else:
                failed = False
            left = await _left_open(opened, before)
        what = "on a database without a customer table, customers_in"
        if any(conn.thread == loop_thread for conn in recorded):
            raise Wrong(SYNC_SQLITE.format(what=what))
        if any(not conn.closed_here for conn in recorded):
            left = left or 1
        if left:
            raise Wrong("when the query failed (a database without a customer table), your "
                        "connection stayed open: close() was skipped by the exception. Use "
                        "`async with aiosqlite.connect(path) as db:`, which closes it anyway.")
        if not failed:
            raise Wrong(f"on a database without a customer table, customers_in returned {got!r}. "
                        "Let the error propagate: an empty answer would hide a broken database.")
        await _customers_cancelled(customers_in, path)
    return ("dict rows, hostile countries kept as data, and the connection closed on success, on "
            "failure and when cancelled.")


q5 = Exercise(
    "q5", "customers_in", _check_customers_in,
    hints=["`async with aiosqlite.connect(path) as db:` opens the connection and closes it when "
           "the block ends, even through an exception.",
           "A row factory is a function (cursor, row) → anything. For dicts: "
           "`{col[0]: value for col, value in zip(cursor.description, row, strict=True)}`; set it with "
           "`db.row_factory = ...` before executing.",
           "`SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
           "ORDER BY last_name, first_name`, with `(country,)`, and return `await "
           "cursor.fetchall()` inside the `async with`."],
    title="Own the connection: dict rows, closed on every path",
)
