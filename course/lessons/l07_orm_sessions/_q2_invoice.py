"""q2: an invoice with its lines, in one transaction (refusals, a broken list, a cancellation)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState

from course.checking.backends import on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong, call, must_raise
from course.db.engines import Backend
from course.models import Invoice, InvoiceLine, Track
from course.probes import InjectedFailure, ListThatBreaks, StatementCounter

from ._common import LIMIT, fstring_sql, literal_in, new_track, on_backend, run

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


async def _refusing(engine: AsyncEngine) -> None:
    """The check's own rules in the database: track 13 and a total over 100 are refused."""
    async with engine.begin() as conn:
        for statement in RULES[engine.dialect.name]:
            await conn.execute(text(statement))

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


LAZY_LINES = ("the check saw your code lazy-load `Invoice.lines`: reading the lines of an "
              "invoice already in the database asks the database for them, without `await`, "
              "which an AsyncSession cannot do (MissingGreenlet). Likely your new invoice had "
              "been flushed by a query's autoflush (a `session.get()` after "
              "`session.add(invoice)`, say) before lines were appended to `invoice.lines`. "
              "Build the invoice with all its lines before `session.add(invoice)` (look the "
              "tracks up first, then `Invoice(..., lines=[...])`), or add each line on its own: "
              "`session.add(InvoiceLine(invoice=invoice, ...))`.")


def _lazy_loads(session: AsyncSession) -> list[str]:
    """The relationships ("Invoice.lines") the session lazy-loads from now on, as they start."""
    loads: list[str] = []

    def seen(state: ORMExecuteState) -> None:
        if state.is_select and state.is_relationship_load and state.lazy_loaded_from is not None:
            loads.append(str(getattr(state.loader_strategy_path, "prop", "")))

    event.listen(session.sync_session, "do_orm_execute", seen)
    return loads


async def _invoice_counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:  # a connection of its own: it sees only what was committed
        return ((await conn.scalar(select(func.count()).select_from(Invoice))) or 0,
                (await conn.scalar(select(func.count()).select_from(InvoiceLine))) or 0)


async def _check_create_invoice(create_invoice) -> str:
    await on_each_backend("check-07-q2-{backend}",
                          lambda engine, backend: _invoice_cases(engine, backend, create_invoice),
                          prepare=_refusing)
    return ("committed when complete; on SQLite and PostgreSQL nothing is left after a refused "
            "line, a missing track, a refused total, a broken list or a cancellation.")


async def _invoice_cases(engine: AsyncEngine, backend: Backend, create_invoice) -> None:
    on = on_backend(backend)
    rng = random.Random()
    Session = async_sessionmaker(engine, expire_on_commit=False)
    new_id = rng.randrange(5_000, 9_000)
    new_price = rng.choice(["1.49", "2.39", "0.45"])
    async with Session.begin() as s:
        s.add(new_track(new_id, "A track the check added", new_price))
    customer = rng.choice([c for c in range(1, 60) if c != 7])
    cases = [(7, FIRST_LINES, Decimal("4.96")),
             (customer, [(new_id, 3), (3503, 1)], Decimal(new_price) * 3 + Decimal("0.99")),
             # the same track twice in one invoice: two lines, as the pairs say
             (customer, [(new_id, 1), (3, 2), (new_id, 2)], Decimal(new_price) * 3 + Decimal("1.98"))]
    for customer_id, lines, total in cases:
        await _good_invoice(Session, on, create_invoice, customer_id, lines, total, new_id)
    committed = await _invoice_counts(engine)
    await _refused_invoices(Session, on, create_invoice, committed)
    await _broken_list(Session, on, create_invoice, committed)
    await _cancelled(Session, on, create_invoice, committed)


async def _good_invoice(Session: async_sessionmaker[AsyncSession], on: str, create_invoice: Any,
                        customer_id: int, lines: list[tuple[int, int]], total: Decimal, new_id: int) -> None:
    """One invoice that must be stored whole: its lines at the tracks' prices, its total, committed."""
    engine = Session.kw["bind"]
    before = await _invoice_counts(engine)
    async with Session() as session:
        loads = _lazy_loads(session)
        with StatementCounter(engine) as counter:
            try:
                invoice_id = await run(create_invoice, session, customer_id, list(lines))
            except (Wrong, LearnerError):
                if "Invoice.lines" in loads:
                    raise Wrong(on + LAZY_LINES) from None
                raise
        if (value := literal_in(counter.statements, [new_id, 2819])) is not None:
            raise fstring_sql(value)
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


async def _nothing_stayed(engine: AsyncEngine, committed: tuple[int, int], when: str,
                          advice: str = "Commit once, at the end.") -> None:
    """A Wrong when invoices or lines of a failed call stayed in the database."""
    if (now := await _invoice_counts(engine)) != committed:
        raise Wrong(f"{when}, {now[0] - committed[0]} invoice(s) and {now[1] - committed[1]} "
                    f"line(s) stayed in the database. {advice}")


async def _refused_invoices(Session: async_sessionmaker[AsyncSession], on: str, create_invoice: Any,
                            committed: tuple[int, int]) -> None:
    """Invoices the database refuses, or that name a missing track: nothing of them may stay."""
    engine = Session.kw["bind"]
    failures = [([(5, 1), (13, 1), (6, 1)], "the database refused its second line (track 13)"),
                ([(7, 1), (999_999, 1)], "its second line names track 999999, which does not exist"),
                ([(1, 2), (3, 200)], "the database refused its total, over 100")]
    for lines, why in failures:
        async with Session() as session:
            try:
                got = await run(create_invoice, session, 7, list(lines))
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
        await _nothing_stayed(engine, committed, f"{on}when {why}", "Nothing from a failed invoice "
                              "may remain: one transaction, one commit, at the end.")


async def _broken_list(Session: async_sessionmaker[AsyncSession], on: str, create_invoice: Any,
                       committed: tuple[int, int]) -> None:
    """A list of lines that breaks midway (not a database error): nothing may stay."""
    engine = Session.kw["bind"]
    async with Session() as session:
        lines = ListThatBreaks([(8, 1), (9, 2), (10, 1)], 2, "the list of lines")
        await must_raise(InjectedFailure, run(create_invoice, session, 7, lines),
                         lambda got: f"{on}the list of lines itself failed at its third line, and "
                                     f"create_invoice returned {got!r}. Let the error reach the caller.")
        if session.in_transaction():
            raise Wrong(f"{on}when the list of lines broke midway (not a database error), the "
                        "session was left inside its transaction: your rollback runs only for "
                        "some errors. `async with session.begin():` rolls back on any exception.")
    await _nothing_stayed(engine, committed, f"{on}when the list of lines broke midway")


async def _cancelled(Session: async_sessionmaker[AsyncSession], on: str, create_invoice: Any,
                     committed: tuple[int, int]) -> None:
    """A call cancelled midway, as when a request times out: nothing may stay."""
    engine = Session.kw["bind"]
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
    await _nothing_stayed(engine, committed, f"{on}after a cancellation midway")


q2 = Exercise(
    "q2", "create_invoice", _check_create_invoice,
    hints=["The sale must commit at the end and vanish whole if anything stops it midway, a "
           "cancellation included. The lesson's section 4 shows a session method that, used with "
           "`async with`, does both for you: which one?",
           "`async with session.begin():` around all the work: it commits when the block ends, "
           "and rolls back if anything (an error, a cancellation) leaves it. Inside it, build the "
           "objects: `invoice = Invoice(customer_id=..., invoice_date=datetime.now(), total=...)`, and one `InvoiceLine(track_id=..., unit_price=track.unit_price, "
           "quantity=...)` per line, added to `invoice.lines`. `session.add(invoice)` takes the "
           "lines with it; it is not a coroutine.",
           "`track = await session.get(Track, track_id)` gives None for a missing track: raise "
           "then. `await session.flush()` gives the invoice its id before the block commits."],
    limit=LIMIT,
    title="An invoice with its lines, in one transaction",
)
