"""q3: an update that must not lose a concurrent change (PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.util import await_

from course.checking.backends import fresh_engine
from course.checking.checks import Exercise, Wrong
from course.checking.events import Hook, listen_all, remove_all
from course.models import Invoice
from course.probes import StatementCounter, checked_out

from ._common import LIMIT, SessionWatch, fstring_sql, literal_in, run


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

    def _hooks(self) -> list[Hook]:
        return [(self.engine, "before_cursor_execute", self._before),
                (self.engine, "after_cursor_execute", self._after),
                (self.engine, "commit", self._on_commit)]

    def __enter__(self) -> _LostUpdateProbe:
        listen_all(self._hooks())
        return self

    def __exit__(self, *exc: object) -> None:
        remove_all(self._hooks())


async def _total(engine: AsyncEngine, invoice_id: int) -> Decimal | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(Invoice.total).where(Invoice.invoice_id == invoice_id))


async def _check_add_to_total(add_to_total) -> str:
    async with fresh_engine("check-07-q3", "postgresql") as engine:
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
        watch = SessionWatch()  # keeps every session the learner opens, so none is garbage-collected
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
        results = await asyncio.gather(*(run(add_to_total, Session, invoice_id, a) for a in amounts),
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


async def _total_case(engine: AsyncEngine, watch: SessionWatch, invoice_id: int, amount: Decimal,
                      add_to_total) -> None:
    before = await _total(engine, invoice_id)
    assert before is not None
    with StatementCounter(engine) as counter:
        got = await run(add_to_total, watch.sessionmaker(engine), invoice_id, amount)
    if (value := literal_in(counter.statements, [invoice_id, amount])) is not None:
        raise fstring_sql(value)
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
