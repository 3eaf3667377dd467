"""What the exercises of lesson 03 share: a fresh database and an observer, the learner's call
with plain answers for aiosqlite's two classic mistakes, and the pause that lets a check cancel
a call while its transaction is open."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from course.checking.cancelling import paused_or_done
from course.checking.checks import LearnerError, Wrong, call
from course.checking.invoices import PAUSED_TRACK
from course.checking.rows import rows_of
from course.db.sqlite import fresh_sqlite

WORKER = "_connection_worker_thread"  # the name aiosqlite 0.22 gives each connection's thread

FORGOT_FETCH_AWAIT = ("did you forget `await`? An aiosqlite call was used without it: execute(), "
                      "fetchone(), fetchall() and fetchmany() are coroutines, so write `cursor = "
                      "await db.execute(...)` and `rows = await cursor.fetchall()`.")
REOPENED = ("`async with db:` on a connection that is already open tries to open it again "
            "(RuntimeError: threads can only be started once), and on exit it would close it. "
            "It is not a transaction, unlike sqlite3's `with conn:`: use `await db.commit()` "
            "and `await db.rollback()`.")


@asynccontextmanager
async def _database(name: str) -> AsyncIterator[tuple[aiosqlite.Connection, aiosqlite.Connection]]:
    """A fresh Chinook copy: the connection handed to the learner, and an observer connection
    that sees only what was committed."""
    path = fresh_sqlite(name)
    db = await aiosqlite.connect(path)
    try:
        observer = await aiosqlite.connect(path)
        try:
            yield db, observer
        finally:
            await observer.close()
    finally:
        await db.close()  # a no-op if the learner's code closed it already


async def _run(fn: Any, *args: Any) -> Any:
    """call(), plus plain answers for two aiosqlite mistakes: a call without `await`, and
    `async with db:` on a connection that is already open."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the un-awaited call, once collected
        try:
            return await call(fn, *args)
        except (LearnerError, Wrong) as exc:
            text = str(exc)
            if "threads can only be started once" in text:
                message = REOPENED
            elif "was called but never awaited" in text:
                raise  # call() named the very call that lacks its await: keep that
            elif "Result' object" in text or "`await`" in text:  # aiosqlite's Result or ours
                message = FORGOT_FETCH_AWAIT
            else:
                raise
        gc.collect()
    raise Wrong(message)


def _is_closed(db: aiosqlite.Connection) -> bool:
    try:
        db.in_transaction  # noqa: B018 -- raises ValueError once the connection is closed
    except ValueError:
        return True
    return False


def _closed_given_connection() -> Wrong:
    return Wrong("your function closed the connection it was given. On an aiosqlite connection, "
                 "`async with db:` (or `await db.close()`) closes it and throws away uncommitted "
                 "work; it does not commit. The caller owns the connection: use `await "
                 "db.commit()` and leave it open.")


async def _rolled_back_if_open(db: aiosqlite.Connection) -> bool:
    """Whether the learner's code left a transaction open on the connection it was given. If it
    did, roll that back, so the check's next step starts clean. A closed connection is wrong."""
    if _is_closed(db):
        raise _closed_given_connection()
    if not db.in_transaction:
        return False
    await db.rollback()
    return True


def _rows(got: Any, what: str) -> list[tuple]:
    """The learner's rows as plain tuples, or a Wrong that says what came back instead."""
    return rows_of(got, what, "`await cursor.fetchall()`")


def _pasted_into_sql(what: str, value: str, bind: str) -> Wrong:
    return Wrong(f"{what}: {value!r} is inside the text of your SQL, so it was pasted into the "
                 "query. Never build SQL with f-strings or +, not even with its quotes doubled "
                 "or escaped by hand: one missed case and the input is SQL again. Bind it: "
                 f"{bind}.")


class _Pause:
    """Makes a statement wait inside the database, so that the check can cancel the learner's
    call while its transaction is open, as a timeout would. A trigger on `table` calls
    course_pause() for track 15: that function (run in aiosqlite's worker thread) tells the
    loop it has started, then waits until the check releases it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = threading.Event()
        self.entered = threading.Event()
        self._loop = asyncio.get_running_loop()

    def _pause(self) -> int:
        self._loop.call_soon_threadsafe(self.started.set)
        self.release.wait(5)  # bounded: the check releases it at once after cancelling
        return 0

    def progress(self) -> int:
        """A sqlite3 progress handler: the first statement to run pauses, once."""
        if not self.entered.is_set():
            self.entered.set()
            self._pause()
        return 0  # go on

    async def install(self, db: aiosqlite.Connection, table: str) -> None:
        await db.create_function("course_pause", 0, self._pause)
        await db.execute(f"""
            CREATE TRIGGER pause_on_track_{PAUSED_TRACK} BEFORE INSERT ON {table}
            WHEN NEW.track_id = {PAUSED_TRACK}
            BEGIN SELECT course_pause(); END
        """)  # the table name is a constant of the check
        await db.commit()

    async def cancel_midway(self, db: aiosqlite.Connection, fn: Any, *args: Any) -> BaseException | Any:
        """Run fn(db, *args), cancel it while the database waits on track 15's row, and return
        what came out: the CancelledError, another exception, or the value it returned."""
        self.started.clear()
        self.release.clear()
        task = asyncio.ensure_future(_run(fn, db, *args))
        try:
            if await paused_or_done(task, self.started):
                task.cancel()
        finally:
            self.release.set()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        if not _is_closed(db):
            await db.execute("SELECT 1")  # queued behind the learner's statements: they are done
        return outcome


def _after_cancel(outcome: Any, pause: _Pause, what: str) -> None:
    """The cancellation must have reached the caller of `what`."""
    if isinstance(outcome, Wrong | LearnerError) and pause.started.is_set():
        if isinstance(outcome, LearnerError):
            raise Wrong(f"cancelled while its statement ran, {what} raised {outcome} instead of "
                        "letting CancelledError through: after rolling back, re-raise it with a "
                        "bare `raise`.")
        raise outcome
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not pause.started.is_set():
        raise Wrong(f"{what} finished without inserting the row for track {PAUSED_TRACK}: every "
                    "pair must get its row.")
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled while its statement ran (as a timeout would), {what} returned "
                    f"{outcome!r}: it swallowed the CancelledError, so the caller thinks it "
                    "worked. Roll back, then re-raise it: `except BaseException: await "
                    "db.rollback(); raise`.")


async def _counts(observer: aiosqlite.Connection, *tables: str) -> tuple[int, ...]:
    counts = []
    for table in tables:  # names from the fixed list above, never from input
        async with observer.execute(f"SELECT count(*) FROM {table}") as cursor:  # noqa: S608 -- table names are constants of the check
            row = await cursor.fetchone()
            assert row is not None  # count(*) always gives a row
            counts.append(row[0])
    return tuple(counts)


def _id_taken(exc: LearnerError, table: str, column: str, what: str) -> None:
    """Raise Wrong if the learner's INSERT chose an id that is already taken."""
    cause = exc.__cause__
    if isinstance(cause, sqlite3.IntegrityError) and f"{table}.{column}" in str(cause):
        raise Wrong(f"{what}: your INSERT gave the new {table} an id that is already taken "
                    f"({cause}). Ids have gaps (rows get deleted), so an id worked out from the "
                    f"rows (count(*) + 1, say) may be in use. Leave {column} out of the INSERT, let SQLite number the row, and read "
                    "the id from cursor.lastrowid.") from None


async def _cancelled_midway(db: aiosqlite.Connection, observer: aiosqlite.Connection, pause: _Pause,
                            what: str, call: tuple[Any, ...], tables: tuple[str, str],
                            before: tuple[int, ...], pending: str, kept: str) -> None:
    """Cancel fn(db, *args) (`call`) while the database inserts track 15's row, as a timeout
    would: the cancellation must reach the caller, with the transaction rolled back and the
    counts of `tables` as `before`. `pending` says what stays pending in an open transaction;
    `kept`, formatted with the rows left in each table, what stayed and when to commit."""
    outcome = await pause.cancel_midway(db, *call)
    in_transaction = await _rolled_back_if_open(db)
    _after_cancel(outcome, pause, what)
    if in_transaction:
        raise Wrong(f"cancelled midway (as a timeout would), {what} left its transaction open, "
                    f"{pending}. `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException): `except BaseException: await "
                    "db.rollback(); raise`.")
    now = await _counts(observer, *tables)
    if now != before:
        left = kept.format(*(n - b for n, b in zip(now, before, strict=True)))
        raise Wrong(f"cancelled midway, {what} left {left} and roll back on any exception, a "
                    "cancellation included.")
