"""Checks for exercises/07-orm-sessions-workbook.ipynb.

Every check makes its own fresh Chinook database (SQLite, then PostgreSQL, unless the exercise
names one), its own engine and sessions, and hands them to the learner's function. Database
creation happens before the learner's code runs; `limit=` leaves room for PostgreSQL's start-up.
"""

from __future__ import annotations

import asyncio
import gc
import random
import re
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from course.checking.checks import Exercise, LearnerError, Wrong, call, must_raise
from course.checking.quiet import quiet_wrong
from course.db.engines import BACKENDS, Backend, fresh_engine_url
from course.db.postgres import PgDatabase, drop_postgres
from course.models import Artist, Invoice, InvoiceLine, Track
from course.probes import (
    HOSTILE_INPUTS,
    ConnectionLeaks,
    InjectedFailure,
    ListThatBreaks,
    StatementCounter,
    checked_out,
)

LIMIT = 40.0  # seconds: two fresh databases, PostgreSQL's start-up on a slow laptop included

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


# --- plumbing shared by the checks ---------------------------------------------------------

@asynccontextmanager
async def _database(name: str, backend: Backend, setup: tuple[str, ...] = ()) -> AsyncIterator[AsyncEngine]:
    """A fresh Chinook on `backend` with the check's own rules (`setup`), as an engine; the
    engine is disposed, and a PostgreSQL database dropped, whatever happens."""
    url = await fresh_engine_url(name, backend)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in setup:
                await conn.execute(text(statement))
        yield engine
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_postgres(PgDatabase(name, url.database or "", ""))


_SYNC_WATCH: dict[str, Any] = {"thread": None, "seen": 0}


def _audit(event_name: str, args: tuple[Any, ...]) -> None:
    # sqlite3.connect on the event loop's thread is a blocking driver; aiosqlite connects in
    # its own worker thread, which this does not count.
    if event_name == "sqlite3.connect" and _SYNC_WATCH["thread"] == threading.get_ident():
        _SYNC_WATCH["seen"] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only counts, while watching

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


async def _run(fn: Any, *args: Any) -> Any:
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
    _SYNC_WATCH["thread"], _SYNC_WATCH["seen"] = threading.get_ident(), 0
    try:
        result = await call(fn, *args)
    except Wrong as exc:
        if str(exc).startswith("cursor() was called but never awaited"):
            raise Wrong(LAZY_SQLITE) from None  # aiosqlite's trace of a MissingGreenlet
        raise
    except LearnerError as exc:
        if isinstance(exc.__cause__, ModuleNotFoundError) and "psycopg" in str(exc.__cause__):
            raise Wrong(PSYCOPG) from None
        if _SYNC_WATCH["seen"]:
            raise Wrong(SYNC_DRIVER) from None
        raise
    finally:
        seen, _SYNC_WATCH["thread"] = _SYNC_WATCH["seen"], None
    if seen:
        raise Wrong(SYNC_DRIVER)
    return result


def _literal_in(statements: list[str], values: list[Any]) -> Any:
    """The first value written into the SQL text itself (f-string SQL), or None. Small integers
    are skipped: they occur in legitimate SQL too (`NUMERIC(10, 2)`, `LIMIT 1`)."""
    for value in values:
        if isinstance(value, int) and abs(value) < 100:
            continue
        pattern = rf"(?<![\w$:]){re.escape(str(value))}(?!\w)"
        if any(re.search(pattern, s) for s in statements):
            return value
    return None


def _fstring_sql(value: Any) -> Wrong:
    return Wrong(f"the value {value!r} is inside your SQL text: the statement was built from "
                 "strings (an f-string in text(), say). Bind it instead: `select(...).where(Model."
                 "column == value)`, or `text(\"... = :name\")` with the value passed separately.")


def _on(backend: Backend) -> str:
    return f"on {NAMES[backend]}, "


def _new_track(track_id: int, name: str, price: str = "1.49") -> Track:
    return Track(track_id=track_id, name=name, album_id=None, media_type_id=1, genre_id=1,
                 composer=None, milliseconds=200_000, bytes=None, unit_price=Decimal(price))


# --- q1: a track by its key, or None -------------------------------------------------------

async def _check_track_or_none(track_or_none) -> str:
    for backend in BACKENDS:
        async with _database(f"check-07-q1-{backend}", backend) as engine:
            await _track_cases(engine, backend, track_or_none)
    return ("a Track or None on SQLite and PostgreSQL, from the session you passed, and no query "
            "when the track is already in it.")


async def _track_cases(engine: AsyncEngine, backend: Backend, track_or_none) -> None:
    rng = random.Random()
    new_id = rng.randrange(5_000, 9_000)  # beyond Chinook's 3503 tracks, with a gap before it
    hostile = HOSTILE_INPUTS[2]
    Session = async_sessionmaker(engine, expire_on_commit=False)
    async with Session.begin() as s:
        s.add(_new_track(new_id, hostile))
    wanted = [*rng.sample(range(2, 3503), 3), 3503, new_id]
    missing = [0, 3504, new_id - 1, -7]
    async with Session() as session:
        names = dict((await session.execute(
            select(Track.track_id, Track.name).where(Track.track_id.in_(wanted)))).all())
        session.expunge_all()
        for track_id in wanted + missing:
            with StatementCounter(engine) as counter:
                try:
                    got = await _run(track_or_none, session, track_id)
                except LearnerError as exc:
                    if type(exc.__cause__).__name__ == "NoResultFound":
                        raise Wrong(f"{_on(backend)}track_or_none(session, {track_id}) raised "
                                    f"{exc}: there is no track {track_id}, and `.one()` insists on "
                                    "exactly one row. Return None instead: session.get does.") from None
                    raise
            if (value := _literal_in(counter.statements, [track_id])) is not None:
                raise _fstring_sql(value)
            call_text = f"{_on(backend)}track_or_none(session, {track_id})"
            if track_id in missing:
                if got is not None:
                    raise Wrong(f"{call_text} returned {got!r}; there is no track {track_id}, so "
                                "it should return None.")
                continue
            if got is None:
                raise Wrong(f"{call_text} returned None, but track {track_id} exists "
                            f"({names[track_id]!r}; the check added tracks beyond Chinook's "
                            "3503, with gaps in the ids). Look it up by its key.")
            if not isinstance(got, Track):
                raise Wrong(f"{call_text} returned {type(got).__name__}, not a Track: return the "
                            "ORM object itself (session.get gives it), not a row or a name.")
            if got.track_id != track_id or got.name != names[track_id]:
                raise Wrong(f"{call_text} returned {got!r}: that is not track {track_id} "
                            f"({names[track_id]!r}). Look it up by its key.")
            if got not in session:
                raise Wrong(f"{call_text} returned a Track that does not belong to the session you "
                            "were given (another session or engine made it, or the session was "
                            "closed). Use that session, and leave it open: the caller owns it.")
        # the identity map: a track the session already holds needs no query
        kept = await session.get(Track, wanted[0])
        with StatementCounter(engine) as counter:
            got = await _run(track_or_none, session, wanted[0])
        if got is not kept:
            raise Wrong(f"{_on(backend)}with track {wanted[0]} already in the session, "
                        "track_or_none returned another object: the session should hand back the "
                        "one it holds (its identity map).")
        if counter.count:
            raise Wrong(f"{_on(backend)}track {wanted[0]} was already in the session, yet "
                        f"track_or_none ran {counter.count} statement(s). `session.get()` looks in "
                        "the identity map first and asks the database only when it must; a "
                        "select() always asks, and so does get() with populate_existing=True.")


q1 = Exercise(
    "q1", "track_or_none", _check_track_or_none,
    hints=["Section 3 of the lesson (reading, and the identity map) shows a session method that "
           "takes a model class and a primary key, and looks in the session before it asks the "
           "database.",
           "`session.get` returns None when no row has that key, and it is a coroutine: `await` it.",
           "`return await session.get(Track, track_id)`"],
    limit=LIMIT,
    title="A track by its key, or None",
)


# --- q2: an invoice with its lines, in one transaction -------------------------------------

SQLITE_RULES = (
    "CREATE TRIGGER refuse_track_13 BEFORE INSERT ON invoice_line WHEN NEW.track_id = 13 BEGIN "
    "SELECT RAISE(ABORT, 'track 13 is not for sale (a failure injected by the check)'); END",
    "CREATE TRIGGER refuse_big_insert BEFORE INSERT ON invoice WHEN NEW.total > 100 BEGIN "
    "SELECT RAISE(ABORT, 'an invoice over 100 is refused (a failure injected by the check)'); END",
    "CREATE TRIGGER refuse_big_update BEFORE UPDATE ON invoice WHEN NEW.total > 100 BEGIN "
    "SELECT RAISE(ABORT, 'an invoice over 100 is refused (a failure injected by the check)'); END",
)
POSTGRES_RULES = (
    """CREATE FUNCTION course_refuse_track_13() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = 13 THEN
            RAISE EXCEPTION 'track 13 is not for sale (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION course_refuse_big_total() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.total > 100 THEN
            RAISE EXCEPTION 'an invoice over 100 is refused (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER refuse_track_13 BEFORE INSERT ON invoice_line FOR EACH ROW "
    "EXECUTE FUNCTION course_refuse_track_13()",
    "CREATE TRIGGER refuse_big_total BEFORE INSERT OR UPDATE ON invoice FOR EACH ROW "
    "EXECUTE FUNCTION course_refuse_big_total()",
)
RULES = {"sqlite": SQLITE_RULES, "postgresql": POSTGRES_RULES}

FIRST_LINES = [(1, 2), (2819, 1), (3, 1)]  # 0.99 × 2 + 1.99 + 0.99 = 4.96


class LinesThatCancel(list):
    """Lines whose reading, at item `at`, cancels the task that reads them: a request that
    timed out while the invoice was being written."""

    def __init__(self, items: list[Any], at: int) -> None:
        super().__init__(items)
        self._at = at
        self.cancelled = False

    def _maybe_cancel(self, index: int) -> None:
        if index >= self._at and not self.cancelled:
            self.cancelled = True
            task = asyncio.current_task()
            if task is not None:
                task.cancel()

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            self._maybe_cancel(i)
            yield list.__getitem__(self, i)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        self._maybe_cancel(index if index >= 0 else len(self) + index)
        return list.__getitem__(self, index)


async def _invoice_counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:  # a connection of its own: it sees only what was committed
        return ((await conn.scalar(select(func.count()).select_from(Invoice))) or 0,
                (await conn.scalar(select(func.count()).select_from(InvoiceLine))) or 0)


async def _check_create_invoice(create_invoice) -> str:
    for backend in BACKENDS:
        async with _database(f"check-07-q2-{backend}", backend, RULES[backend]) as engine:
            await _invoice_cases(engine, backend, create_invoice)
    return ("committed when complete; on SQLite and PostgreSQL nothing is left after a refused "
            "line, a missing track, a refused total, a broken list or a cancellation.")


async def _invoice_cases(engine: AsyncEngine, backend: Backend, create_invoice) -> None:
    on = _on(backend)
    rng = random.Random()
    Session = async_sessionmaker(engine, expire_on_commit=False)
    new_id = rng.randrange(5_000, 9_000)
    new_price = rng.choice(["1.49", "2.39", "0.45"])
    async with Session.begin() as s:
        s.add(_new_track(new_id, "A track the check added", new_price))
    customer = rng.choice([c for c in range(1, 60) if c != 7])
    cases = [(7, FIRST_LINES, Decimal("4.96")),
             (customer, [(new_id, 3), (3503, 1)], Decimal(new_price) * 3 + Decimal("0.99")),
             # the same track twice in one invoice: two lines, as the pairs say
             (customer, [(new_id, 1), (3, 2), (new_id, 2)], Decimal(new_price) * 3 + Decimal("1.98"))]
    for customer_id, lines, total in cases:
        before = await _invoice_counts(engine)
        async with Session() as session:
            with StatementCounter(engine) as counter:
                invoice_id = await _run(create_invoice, session, customer_id, list(lines))
            if (value := _literal_in(counter.statements, [new_id, 2819])) is not None:
                raise _fstring_sql(value)
            if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
                raise Wrong(f"{on}create_invoice should return the new invoice_id, an int; it "
                            f"returned {type(invoice_id).__name__}. After a flush (or the commit) "
                            "the new Invoice has its id.")
            if session.in_transaction():
                raise Wrong(f"{on}create_invoice returned with its transaction still open, so "
                            "nothing is committed: wrap the work in `async with session.begin():`, "
                            "which commits at the end of the block.")
        async with Session() as observer:
            invoice = await observer.get(Invoice, invoice_id)
            if invoice is None:
                raise Wrong(f"{on}another session cannot see invoice {invoice_id}: it was never "
                            "committed. `async with session.begin():` commits when the block ends.")
            got_lines = (await observer.execute(
                select(InvoiceLine.track_id, InvoiceLine.unit_price, InvoiceLine.quantity)
                .where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.invoice_line_id))).all()
            prices = dict((await observer.execute(
                select(Track.track_id, Track.unit_price).where(Track.track_id.in_([t for t, _ in lines])))).all())
        expected = sorted((t, prices[t], q) for t, q in lines)
        if sorted(r[0] for r in got_lines) != sorted(t for t, _ in lines):
            twice = " (a track may come twice: each pair is its own line)" \
                if len({t for t, _ in lines}) < len(lines) else ""
            raise Wrong(f"{on}invoice {invoice_id} for lines {lines} has {len(got_lines)} line(s) "
                        f"for tracks {[r[0] for r in got_lines]}; it should have one per pair, "
                        f"{len(lines)} in all{twice}.")
        if sorted(tuple(r) for r in got_lines) != expected:
            raise Wrong(f"{on}invoice {invoice_id} for lines {lines} should have the lines "
                        f"(track_id, unit_price, quantity) {expected}, each at the track's own "
                        f"price; it has {[tuple(r) for r in got_lines]}.")
        if invoice.customer_id != customer_id or invoice.total != total:
            raise Wrong(f"{on}invoice {invoice_id} should belong to customer {customer_id} with "
                        f"total {total} (the sum of unit_price × quantity over its lines); it has "
                        f"customer {invoice.customer_id} and total {invoice.total}.")
        after = await _invoice_counts(engine)
        if after != (before[0] + 1, before[1] + len(lines)):
            raise Wrong(f"{on}one invoice with {len(lines)} lines should add 1 invoice and "
                        f"{len(lines)} lines; yours added {after[0] - before[0]} and "
                        f"{after[1] - before[1]}.")

    committed = await _invoice_counts(engine)
    failures = [([(5, 1), (13, 1), (6, 1)], "the database refused its second line (track 13)"),
                ([(7, 1), (999_999, 1)], "its second line names track 999999, which does not exist"),
                ([(1, 2), (3, 200)], "the database refused its total, over 100")]
    for lines, why in failures:
        async with Session() as session:
            try:
                got = await _run(create_invoice, session, 7, list(lines))
            except LearnerError:
                pass  # the failure must reach the caller
            else:
                raise Wrong(f"{on}create_invoice(session, 7, {lines}) returned {got!r}, but {why}. "
                            "It must fail: let the error reach the caller, so it knows nothing "
                            "was saved.")
            if session.in_transaction():
                raise Wrong(f"{on}when {why}, the session was left inside its failed "
                            "transaction. `async with session.begin():` rolls back when an "
                            "exception leaves the block.")
        if (now := await _invoice_counts(engine)) != committed:
            raise Wrong(f"{on}when {why}, {now[0] - committed[0]} invoice(s) and "
                        f"{now[1] - committed[1]} line(s) stayed in the database. Nothing from a "
                        "failed invoice may remain: one transaction, one commit, at the end.")

    async with Session() as session:
        lines = ListThatBreaks([(8, 1), (9, 2), (10, 1)], 2, "the list of lines")
        await must_raise(InjectedFailure, _run(create_invoice, session, 7, lines),
                         lambda got: f"{on}the list of lines itself failed at its third line, and "
                                     f"create_invoice returned {got!r}. Let the error reach the caller.")
        if session.in_transaction():
            raise Wrong(f"{on}when the list of lines broke midway (not a database error), the "
                        "session was left inside its transaction: your rollback runs only for "
                        "some errors. `async with session.begin():` rolls back on any exception.")
    if (now := await _invoice_counts(engine)) != committed:
        raise Wrong(f"{on}when the list of lines broke midway, {now[0] - committed[0]} invoice(s) "
                    f"and {now[1] - committed[1]} line(s) stayed in the database. Commit once, at "
                    "the end.")

    async with Session() as session:
        lines = LinesThatCancel([(11, 1), (12, 1), (14, 1)], 1)
        task = asyncio.create_task(call(create_invoice, session, 7, lines))
        try:
            got = await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not lines.cancelled or not task.cancelled() or (me is not None and me.cancelling()):
                raise  # the check itself is being cancelled (its deadline)
        except LearnerError:
            raise Wrong(f"{on}create_invoice was cancelled midway (as when a request times out) "
                        "and turned the cancellation into another error: let CancelledError "
                        "through.") from None
        else:
            if lines.cancelled:
                raise Wrong(f"{on}create_invoice was cancelled midway (as when a request times "
                            f"out) and returned {got!r} anyway: never swallow CancelledError; let "
                            "it reach the caller.")
        if session.in_transaction():
            raise Wrong(f"{on}create_invoice was cancelled midway (as when a request times out) "
                        "and left the session inside its transaction: `except Exception` does "
                        "not catch CancelledError. `async with session.begin():` rolls back "
                        "whatever leaves the block.")
    if (now := await _invoice_counts(engine)) != committed:
        raise Wrong(f"{on}after a cancellation midway, {now[0] - committed[0]} invoice(s) and "
                    f"{now[1] - committed[1]} line(s) stayed in the database. Commit once, at the end.")


q2 = Exercise(
    "q2", "create_invoice", _check_create_invoice,
    hints=["Do everything inside one `async with session.begin():` block: it commits when the "
           "block ends, and rolls back if anything (an error, a cancellation) leaves it.",
           "Build the objects: `invoice = Invoice(customer_id=..., invoice_date=datetime.now(), "
           "total=...)`, and one `InvoiceLine(track_id=..., unit_price=track.unit_price, "
           "quantity=...)` per line, added to `invoice.lines`. `session.add(invoice)` takes the "
           "lines with it; it is not a coroutine.",
           "`track = await session.get(Track, track_id)` gives None for a missing track: raise "
           "then. `await session.flush()` gives the invoice its id before the block commits."],
    limit=LIMIT,
    title="An invoice with its lines, in one transaction",
)


# --- q3: an update that must not lose a concurrent change (PostgreSQL) ----------------------

class _LostUpdateProbe:
    """Makes a lost update certain instead of likely: a task that read an invoice without a
    lock and then wrote it waits, before it commits, until another task has read the invoice
    too (the old total, as it is not committed yet), or every task has read it.

    When nobody else can read meanwhile (an asyncio.Lock held until after the commit, say),
    no lost update can happen: after one wait of 3 s nobody waits any more. Calls are told
    apart by their connection, not their task: `Session.begin()` commits (and flushes) in a
    task of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.tasks = 0
        self.reads: dict[Any, str] = {}  # by connection
        self.done_reads: list[Any] = []  # which connection finished a read, in order
        self.marks: dict[Any, int] = {}  # len(done_reads) when a connection wrote
        self.changed = asyncio.Event()
        self.gave_up = False

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        task = conn
        if statement.lstrip().upper().startswith("SELECT") and "FROM invoice" in statement \
                and "FOR UPDATE" not in statement.upper():
            self.reads.setdefault(task, "started")
        elif statement.lstrip().upper().startswith("UPDATE INVOICE") and self.reads.get(task) == "done":
            self.marks.setdefault(task, len(self.done_reads))

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        task = conn
        if self.reads.get(task) == "started":
            self.reads[task] = "done"
            self.done_reads.append(task)
            self.changed.set()

    def _on_commit(self, conn) -> None:
        task = conn
        if task in self.marks:
            await_(self._someone_else_read(task, self.marks.pop(task)))

    def _read_since(self, task: Any, mark: int) -> bool:
        return len(set(self.done_reads)) >= self.tasks or \
            any(other is not task for other in self.done_reads[mark:])

    async def _someone_else_read(self, task: Any, mark: int) -> None:
        try:
            async with asyncio.timeout(3):
                while not self.gave_up and not self._read_since(task, mark):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            self.gave_up = True

    def __enter__(self) -> _LostUpdateProbe:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        event.listen(self.engine, "commit", self._on_commit)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)
        event.remove(self.engine, "commit", self._on_commit)


async def _total(engine: AsyncEngine, invoice_id: int) -> Decimal | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(Invoice.total).where(Invoice.invoice_id == invoice_id))


async def _check_add_to_total(add_to_total) -> str:
    async with _database("check-07-q3", "postgresql") as engine:
        return await _total_cases(engine, add_to_total)


async def _total_cases(engine: AsyncEngine, add_to_total) -> str:
    rng = random.Random()
    Session = async_sessionmaker(engine, expire_on_commit=False)
    new_id = rng.randrange(5_000, 9_000)
    async with Session.begin() as s:
        s.add(Invoice(invoice_id=new_id, customer_id=3, invoice_date=datetime(2026, 1, 2),
                      total=Decimal("10.00")))
    # one call at a time first: the arithmetic, the returned total, the session closed
    for invoice_id, amount in ((new_id, Decimal("2.50")), (rng.randrange(100, 413), Decimal("-0.99"))):
        watch = _SessionWatch()  # keeps every session the learner opens, so none is garbage-collected
        try:
            await _total_case(engine, watch, invoice_id, amount, add_to_total)
        finally:
            for session in watch.created:
                await session.close()
    # then concurrent calls on one invoice: none may be lost
    amounts = [Decimal(rng.choice(["1.00", "2.00", "0.50", "4.25"])) for _ in range(5)]
    invoice_id = rng.randrange(1, 413)
    before = await _total(engine, invoice_id)
    assert before is not None
    with _LostUpdateProbe(engine) as probe:
        probe.tasks = len(amounts)
        results = await asyncio.gather(*(_run(add_to_total, Session, invoice_id, a) for a in amounts),
                                       return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    after = await _total(engine, invoice_id)
    expected = before + sum(amounts)
    if after != expected:
        raise Wrong(f"{len(amounts)} concurrent calls added {sum(amounts)} in all to invoice "
                    f"{invoice_id}, from {before}, but the total is {after}, not {expected}: "
                    "changes were lost. Each call read "
                    "the old total before another had committed, and wrote over it. Lock the row "
                    "while you change it: `await session.get(Invoice, invoice_id, "
                    "with_for_update=True)`, or let the database add: `update(Invoice)."
                    "values(total=Invoice.total + amount)`.")
    _each_returned_its_total(invoice_id, before, amounts, results)
    return "no change lost among 5 concurrent calls on PostgreSQL, and each returned its new total."


def _each_returned_its_total(invoice_id: int, before: Decimal, amounts: list[Decimal],
                             results: list[Any]) -> None:
    """The calls committed one after another: sorted, each returned total is the one before it
    plus that call's own amount (every amount is positive), starting from `before`."""
    for got, amount in zip(results, amounts, strict=True):
        if not isinstance(got, Decimal):
            raise Wrong(f"a concurrent add_to_total(Session, {invoice_id}, {amount}) returned "
                        f"{got!r}; it should return the new total, a Decimal.")
    previous = before
    for got, amount in sorted(zip(results, amounts, strict=True)):
        if got - amount != previous:
            raise Wrong(f"{len(amounts)} concurrent calls added {', '.join(map(str, amounts))} to "
                        f"invoice {invoice_id}, from {before}; the committed total is right, but "
                        f"the call that added {amount} returned {got}, which is no total the "
                        f"invoice had after that call's change (the totals, in commit order, "
                        f"ran from {before} to {before + sum(amounts)}). Return the total your own "
                        "change produced, read inside the same transaction: the locked object's "
                        "`total`, or UPDATE … RETURNING.")
        previous = got


async def _total_case(engine: AsyncEngine, watch: _SessionWatch, invoice_id: int, amount: Decimal,
                      add_to_total) -> None:
    before = await _total(engine, invoice_id)
    assert before is not None
    with StatementCounter(engine) as counter:
        got = await _run(add_to_total, watch.sessionmaker(engine), invoice_id, amount)
    if (value := _literal_in(counter.statements, [invoice_id, amount])) is not None:
        raise _fstring_sql(value)
    if watch.unclosed() or checked_out(engine):
        raise Wrong(f"add_to_total(Session, {invoice_id}, {amount}) returned with a session still "
                    "open in a transaction, its connection still checked out of the pool: it was "
                    "never closed. Open it with `async with Session.begin() as session:` (or `async with "
                    "Session() as session:`), which closes it on the way out.")
    after = await _total(engine, invoice_id)
    if after == before:
        raise Wrong(f"add_to_total(Session, {invoice_id}, {amount}) left the committed total at "
                    f"{before}: the change was never committed. End with `await "
                    "session.commit()`, or use `async with Session.begin()`.")
    if after != before + amount:
        raise Wrong(f"add_to_total(Session, {invoice_id}, {amount}) took the total from "
                    f"{before} to {after}; it should be {before + amount}.")
    if not isinstance(got, Decimal) or got != after:
        raise Wrong(f"add_to_total(Session, {invoice_id}, {amount}) returned {got!r}; it should "
                    f"return the new total, the Decimal {after}.")


q3 = Exercise(
    "q3", "add_to_total", _check_add_to_total,
    hints=["Two sessions that both read 10.00, add, and write back make 12.00, not 14.00: the "
           "second write loses the first. The row must be locked from the read to the commit.",
           "`await session.get(Invoice, invoice_id, with_for_update=True)` reads with SELECT … FOR "
           "UPDATE: a concurrent caller waits at its own read until you commit.",
           "`async with Session.begin() as session:` then get with_for_update=True, `invoice.total "
           "+= amount`, `total = invoice.total`; return it after the block (which commits)."],
    limit=LIMIT,
    title="An update that must not lose a concurrent change (PostgreSQL)",
)


# --- q4: concurrent lookups, one session per task ------------------------------------------

class _SessionWatch:
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


async def _check_track_names(track_names) -> str:
    for backend in BACKENDS:
        async with _database(f"check-07-q4-{backend}", backend) as engine:
            await _names_cases(engine, backend, track_names)
    return ("one session per task on SQLite and PostgreSQL, several at work at once, every one "
            "closed, names in the order asked.")


async def _names_cases(engine: AsyncEngine, backend: Backend, track_names) -> None:
    on = _on(backend)
    rng = random.Random()
    new_id = rng.randrange(5_000, 9_000)
    plain = async_sessionmaker(engine, expire_on_commit=False)
    async with plain.begin() as s:
        s.add(_new_track(new_id, HOSTILE_INPUTS[1]))
    async with plain() as s:  # the pool is warm from here on, as it is in a running app
        names = dict((await s.execute(select(Track.track_id, Track.name))).all())
    shuffled = rng.sample(range(1, 3504), 6)
    cases = [[9, 3, 1], [*shuffled, new_id, 999_999, shuffled[0], 2], []]
    for ids in cases:
        watch = _SessionWatch()
        try:
            await _names_case(engine, on, names, ids, watch, track_names)
        finally:
            for session in watch.created:  # close what the learner's code left open
                await session.close()


async def _names_case(engine: AsyncEngine, on: str, names: dict[int, str], ids: list[int],
                      watch: _SessionWatch, track_names) -> None:
    Session = watch.sessionmaker(engine)
    with StatementCounter(engine) as counter:
        try:
            got = await _run(track_names, Session, list(ids))
        except LearnerError as exc:
            if watch.shared > 1:
                raise Wrong(_shared(on, watch.shared)) from None
            cause = str(exc.__cause__)
            if "isce" in cause or "concurrent operations are not permitted" in cause:
                raise Wrong(_shared(on, 2)) from None
            if "'async_sessionmaker' object" in cause or "'WatchedSession'" in cause:
                raise Wrong(f"{on}your code raised {exc}. `Session` is a sessionmaker, a factory "
                            "of sessions, not a session: call it to get one, `async with Session() "
                            "as session:` inside each task, then `await session.scalar(...)`.") from None
            raise
    await asyncio.sleep(0)
    if (value := _literal_in(counter.statements, ids)) is not None:
        raise _fstring_sql(value)
    if watch.shared > 1:
        raise Wrong(_shared(on, watch.shared))
    if unclosed := watch.unclosed():
        raise Wrong(f"{on}{unclosed} session(s) were still open when track_names returned: "
                    "each holds a connection out of the pool until someone closes it. Open "
                    "each one with `async with Session() as session:`.")
    if left := checked_out(engine):
        raise Wrong(f"{on}{left} connection(s) were still checked out of the pool when "
                    "track_names returned. Open sessions with `async with Session() as "
                    "session:` and connections with `async with`, so they go back.")
    expected = [names.get(i) for i in ids]
    if not isinstance(got, list):
        raise Wrong(f"track_names should return a list of names, not {type(got).__name__}.")
    if got != expected:
        if sorted(map(str, got)) == sorted(map(str, expected)):
            raise Wrong(f"{on}track_names(Session, {ids}) returned the right names in another "
                        "order: keep the order of track_ids (gather keeps the order of its "
                        "arguments).")
        raise Wrong(f"{on}track_names(Session, {ids}) returned {got!r}; expected {expected!r} "
                    "(None for a track that does not exist, a repeated id repeated).")
    if len(ids) > 1 and len(watch.created) < len(set(ids)):
        raise Wrong(f"{on}track_names used {len(watch.created)} session(s) for {len(set(ids))} "
                    "different ids: give every task its own, `async with Session() as session:` "
                    "inside the task.")
    if len(ids) > 1 and watch.peak < 2:
        raise Wrong(f"{on}the lookups ran one at a time (at most {watch.peak} session at work "
                    "at once). Start one task per id with asyncio.gather (or a TaskGroup), "
                    "each opening its own session.")


def _shared(on: str, tasks: int) -> str:
    return (f"{on}one session was used by {tasks} concurrent tasks. An AsyncSession is not safe "
            "to share: with an empty pool it fails (\"This session is provisioning a new "
            "connection; concurrent operations are not permitted\"), with a warm pool it "
            "silently runs the tasks one after another. Open one per task: `async with "
            "Session() as session:` inside the task.")


q4 = Exercise(
    "q4", "track_names", _check_track_names,
    hints=["Write a small `async def one(track_id)` that opens its own session, `async with "
           "Session() as session:`, and returns the track's name (or None).",
           "Inside it: `return await session.scalar(select(Track.name).where(Track.track_id == "
           "track_id))`.",
           "`return list(await asyncio.gather(*(one(i) for i in track_ids)))`: one task per id, "
           "results in the order of the ids."],
    limit=LIMIT,
    title="Concurrent lookups, one session per task",
)


# --- q5: an upsert on both dialects --------------------------------------------------------

async def _artist_names(engine: AsyncEngine, ids: list[int]) -> dict[int, str | None]:
    async with engine.connect() as conn:
        return dict((await conn.execute(
            select(Artist.artist_id, Artist.name).where(Artist.artist_id.in_(ids)))).all())


ONE_STATEMENT = ("the exercise asks for one: an upsert, INSERT … ON CONFLICT DO UPDATE, with "
                 "every artist in it whatever the length of the list, and no SELECT first (the ON "
                 "CONFLICT clause is what tells new ids from old ones).")


async def _check_save_artists(save_artists) -> str:
    for backend in BACKENDS:
        async with _database(f"check-07-q5-{backend}", backend) as engine:
            await _upsert_cases(engine, backend, save_artists)
    return ("one statement per call on SQLite and PostgreSQL: new artists added, existing ones "
            "renamed, hostile names kept as data, committed.")


async def _upsert_cases(engine: AsyncEngine, backend: Backend, save_artists) -> None:
    on = _on(backend)
    rng = random.Random()
    Session = async_sessionmaker(engine, expire_on_commit=False)
    fresh = rng.sample(range(1_000, 9_000), 4)
    first = [(1, "AC/DC (remastered)"), (fresh[0], "Brand New Band"), (58, "Purple, Deep")]
    second = [(fresh[0], HOSTILE_INPUTS[1]), (fresh[1], HOSTILE_INPUTS[0]), (2, HOSTILE_INPUTS[2]),
              (fresh[2], HOSTILE_INPUTS[3]), (6, ""), (fresh[3], "AC\\DC 100%_")]
    bulk = [(i, f"Artist number {i}") for i in rng.sample(range(200, 9_000), 40)]
    for artists in (first, second, bulk, []):
        ids = [i for i, _ in artists]
        untouched = await _artist_names(engine, [3, 4, 5])
        before = await _artist_names(engine, ids)
        async with Session() as session:
            with StatementCounter(engine) as counter:
                try:
                    await _run(save_artists, session, list(artists))
                except LearnerError as exc:
                    if artists is second:
                        raise Wrong(f"{on}names such as {HOSTILE_INPUTS[1]!r} broke your statement "
                                    f"({exc}): values must never become SQL text. Pass them as "
                                    "values of an insert() construct.") from None
                    if not artists:
                        raise Wrong(f"{on}save_artists(session, []) raised {exc}: an INSERT needs "
                                    "at least one row. Return early when the list is empty.") from None
                    if type(exc.__cause__).__name__ == "IntegrityError":
                        raise Wrong(f"{on}saving artists that already exist raised {exc}: a plain "
                                    "INSERT cannot update a row. Add ON CONFLICT (artist_id) DO "
                                    "UPDATE: `stmt.on_conflict_do_update(...)`.") from None
                    if isinstance(exc.__cause__, AttributeError) and "constraint_target" in str(exc):
                        raise Wrong(f"{on}your code raised {exc}: that is the SQLite insert() "
                                    "construct on PostgreSQL. Pick it by the session's dialect: "
                                    "`session.bind.dialect.name` is 'sqlite' or 'postgresql'.") from None
                    raise
            if (value := _literal_in(counter.statements, ids)) is not None:
                raise _fstring_sql(value)
            if artists and len(counter.statements) > 1:
                kinds = ", ".join(s.split(None, 1)[0].upper() for s in counter.statements[:6])
                more = "…" if len(counter.statements) > 6 else ""
                raise Wrong(f"{on}saving {len(artists)} artists ran {len(counter.statements)} "
                            f"statements ({kinds}{more}); {ONE_STATEMENT}")
            if session.in_transaction() and artists:
                raise Wrong(f"{on}save_artists returned with its transaction still open: nothing "
                            "is committed. End with `await session.commit()`.")
        after = await _artist_names(engine, ids)
        if after != dict(artists):
            missing = [i for i, _ in artists if i not in after]
            stale = [i for i, name in artists if i in after and after[i] != name]
            if missing and len(missing) == len(artists) and before != dict(artists):
                raise Wrong(f"{on}another session sees none of the {len(artists)} artists you saved: "
                            "they were never committed. End with `await session.commit()`.")
            if stale and all(before.get(i) == after[i] for i in stale):
                raise Wrong(f"{on}artists {stale} already existed and kept their old names: on a "
                            "conflict, update the name with the new value, `set_={'name': "
                            "stmt.excluded.name}` (on_conflict_do_nothing keeps the old row).")
            raise Wrong(f"{on}after save_artists, artists {ids[:4]}… are {[after.get(i) for i in ids[:4]]}; "
                        f"expected {[n for _, n in artists[:4]]}.")
        if await _artist_names(engine, [3, 4, 5]) != untouched:
            raise Wrong(f"{on}save_artists changed artists it was not given (3, 4 or 5): the "
                        "statement must touch only the rows in the list.")


q5 = Exercise(
    "q5", "save_artists", _check_save_artists,
    hints=["One statement does it: INSERT … ON CONFLICT (artist_id) DO UPDATE SET name = "
           "excluded.name. SQLAlchemy has it in each dialect's own insert(): "
           "`sqlalchemy.dialects.sqlite.insert` and `sqlalchemy.dialects.postgresql.insert`.",
           "Pick the construct with `session.bind.dialect.name`, then `stmt = insert(Artist)."
           "values([{'artist_id': i, 'name': n} for i, n in artists])` and "
           "`stmt.on_conflict_do_update(index_elements=[Artist.artist_id], set_={'name': "
           "stmt.excluded.name})`.",
           "Return early on an empty list (an INSERT needs at least one row); otherwise `await "
           "session.execute(stmt)` and `await session.commit()`."],
    limit=LIMIT,
    title="An upsert on SQLite and PostgreSQL",
)

