"""What the checks of lesson 07 share: running the learner's code, and watching its sessions."""

from __future__ import annotations

import asyncio
import gc
import re
import warnings
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from course.checking.backends import backend_name
from course.checking.checks import LearnerError, Wrong, call
from course.checking.quiet import quiet_wrong
from course.checking.sync_driver import SyncConnects
from course.db.engines import Backend
from course.models import Track
from course.probes import ConnectionLeaks

LIMIT = 40.0  # seconds: two fresh databases, PostgreSQL's start-up on a slow laptop included

# --- running the learner's code -------------------------------------------------------------

SYNC_DRIVER = ("your code opened a SQLite connection with the blocking sqlite3 driver on the "
               "event loop's thread (a sync engine, Session or sqlite3.connect): every query "
               "then stops the whole loop. Use the AsyncSession (or sessionmaker) you were given, "
               "with `await`.")
LAZY_SQLITE = ("your code read an attribute that SQLAlchemy had to load from the database "
               "without `await` (on SQLite that MissingGreenlet leaves 'coroutine Connection.cursor "
               "was never awaited' behind): an expired attribute after a commit, or a relationship "
               "of an object already flushed. Load what you need with `await`, before the commit.")
PSYCOPG = ("your code needed psycopg, the driver a plain `postgresql://` URL means in "
           "SQLAlchemy 2.1: a sync engine. Use the AsyncSession (or sessionmaker) you were "
           "given; an async URL says `postgresql+asyncpg://`.")


async def _settle(tasks: set[asyncio.Task[Any]]) -> None:
    """Let the tasks a rejected answer left running finish (2 s at most, then cancel them), so
    they do not fail later against a database the check has dropped."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=2)
        for task in late:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


DROPPED = ("{n} connection(s) your code opened were dropped without being closed: the garbage "
           "collector found them still checked out of the pool after your function returned (the "
           "check closed them). Open sessions with `async with Session() as session:` and "
           "connections with `async with`, so they go back to the pool.")


async def run(fn: Any, *args: Any) -> Any:
    """call(), watching for a sync driver used on the loop's thread and for connections dropped
    unclosed (closed here, quietly), and tidying up the tasks a rejected answer leaves behind."""
    before = asyncio.all_tasks()
    leaks = ConnectionLeaks()
    try:
        with leaks:
            result = await _watched(fn, *args)
    except (Wrong, LearnerError) as exc:
        await _settle(asyncio.all_tasks() - before)
        await leaks.settle(held=False)
        if isinstance(exc, Wrong):  # the error behind it may hold an un-awaited coroutine
            raise quiet_wrong(exc) from None
        with warnings.catch_warnings():  # a coroutine a forgotten await left: already reported
            warnings.simplefilter("ignore", RuntimeWarning)
            gc.collect()
        raise
    if dropped := await leaks.settle(held=False):
        raise Wrong(DROPPED.format(n=dropped))
    return result


async def _watched(fn: Any, *args: Any) -> Any:
    """call(), with a sync driver, psycopg and aiosqlite's trace of a lazy load told plainly."""
    with SyncConnects() as sync:
        try:
            result = await call(fn, *args)
        except Wrong as exc:
            if str(exc).startswith("cursor() was called but never awaited"):
                raise Wrong(LAZY_SQLITE) from None  # aiosqlite's trace of a MissingGreenlet
            raise
        except LearnerError as exc:
            if isinstance(exc.__cause__, ModuleNotFoundError) and "psycopg" in str(exc.__cause__):
                raise Wrong(PSYCOPG) from None
            if sync.seen:
                raise Wrong(SYNC_DRIVER) from None
            raise
    if sync.seen:
        raise Wrong(SYNC_DRIVER)
    return result


def literal_in(statements: list[str], values: list[Any]) -> Any:
    """The first value written into the SQL text itself (f-string SQL), or None. Small integers
    are skipped: they occur in legitimate SQL too (`NUMERIC(10, 2)`, `LIMIT 1`)."""
    for value in values:
        if isinstance(value, int) and abs(value) < 100:
            continue
        pattern = rf"(?<![\w$:]){re.escape(str(value))}(?!\w)"
        if any(re.search(pattern, s) for s in statements):
            return value
    return None


def fstring_sql(value: Any) -> Wrong:
    """The verdict on a value written into the SQL text."""
    return Wrong(f"the value {value!r} is inside your SQL text: the statement was built from "
                 "strings (an f-string in text(), say). Bind it instead: `select(...).where(Model."
                 "column == value)`, or `text(\"... = :name\")` with the value passed separately.")


def on_backend(backend: Backend) -> str:
    """The start of a message about one backend: "on SQLite, "."""
    return f"on {backend_name(backend)}, "


def new_track(track_id: int, name: str, price: str = "1.49") -> Track:
    """A track the check adds, beyond Chinook's ids."""
    return Track(track_id=track_id, name=name, album_id=None, media_type_id=1, genre_id=1,
                 composer=None, milliseconds=200_000, bytes=None, unit_price=Decimal(price))


class SessionWatch:
    """Which task used which session, how many sessions were open at once, which were closed.

    The shared-session error shows only while the pool is empty; with a warm pool a shared
    session silently runs its tasks' queries one after another. So the watch looks at what the
    code does: a session used from two tasks is shared, whether or not it failed."""

    def __init__(self) -> None:
        self.users: dict[int, set[int]] = {}   # session id -> ids of the tasks that used it
        self.created: list[AsyncSession] = []
        self.open_now = 0                      # sessions inside a transaction right now
        self.peak = 0
        self._open: set[int] = set()

    def sessionmaker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        watch = self

        class WatchedSession(AsyncSession):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                watch.created.append(self)
                event.listen(self.sync_session, "after_begin", watch._begun)
                event.listen(self.sync_session, "do_orm_execute", watch._executed)
                event.listen(self.sync_session, "after_transaction_end", watch._ended)

        return async_sessionmaker(engine, class_=WatchedSession, expire_on_commit=False)

    def _opened(self, session: Any) -> None:
        """A session is at work from its first statement (before it even has a connection)
        until its transaction ends: a task that awaits its first query is already counted."""
        task = asyncio.current_task()
        self.users.setdefault(id(session), set()).add(id(task))
        if id(session) not in self._open:
            self._open.add(id(session))
            self.open_now += 1
            self.peak = max(self.peak, self.open_now)

    def _begun(self, session, transaction, connection) -> None:
        self._opened(session)

    def _executed(self, state) -> None:
        self._opened(state.session)

    def _ended(self, session, transaction) -> None:
        if transaction.parent is None and id(session) in self._open:
            self._open.discard(id(session))
            self.open_now -= 1

    @property
    def shared(self) -> int:
        return max((len(tasks) for tasks in self.users.values()), default=0)

    def unclosed(self) -> int:
        return sum(1 for s in self.created if s.sync_session._transaction is not None
                   or id(s.sync_session) in self._open)
