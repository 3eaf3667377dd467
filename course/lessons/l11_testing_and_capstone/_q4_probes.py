"""q4, the capstone: the database it starts from, and the probes around the learner's app."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

from course.checking.races import RaceGate


class _Receipts:
    """Stands in for the workbook's send_receipt: records the thread of every call and, off the
    loop, whether the order was already committed (seen from a connection of the check's)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.loop: asyncio.AbstractEventLoop | None = None
        self.committed: Any = None  # async (order_id) -> bool, set per database
        self.calls: list[int] = []
        self.on_loop = 0
        self.early: list[int] = []

    def __call__(self, order_id: int) -> None:
        self.calls.append(order_id)
        if threading.get_ident() == self.loop_thread:
            self.on_loop += 1
            return
        if self.committed is None or self.loop is None:
            return
        try:
            seen = asyncio.run_coroutine_threadsafe(self.committed(order_id),
                                                    self.loop).result(timeout=60)
        except Exception:
            return
        if not seen:
            self.early.append(order_id)


class _SleepWatch:
    """time.sleep, watched: counts calls made on the event loop's own thread."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.on_loop = 0
        self.real = time.sleep

    def __call__(self, seconds: float) -> None:
        if threading.get_ident() == self.loop_thread:
            self.on_loop += 1
        self.real(seconds)


class _Connections:
    """Connections of the learner's engines checked out now, counted by pool events, so that it
    works with every pool class (NullPool and StaticPool count nothing themselves)."""

    def __init__(self) -> None:
        self.out: set[int] = set()
        self.engines: list[Any] = []

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        self.out.add(id(record))

    def _checkin(self, dbapi_connection, record) -> None:
        self.out.discard(id(record))

    def watch(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engines.append(engine.sync_engine)
        event.listen(engine.sync_engine, "checkout", self._checkout)
        event.listen(engine.sync_engine, "checkin", self._checkin)

    def count(self) -> int:
        return len(self.out)

    def close(self) -> None:
        from sqlalchemy import event

        for engine in self.engines:
            event.remove(engine, "checkout", self._checkout)
            event.remove(engine, "checkin", self._checkin)


class _FloatMoney:
    """Records every float the learner's code binds for a money column (total, unit_price)."""

    COLUMNS = ("total", "unit_price")

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def before_execute(self, conn, clause, multiparams, params, options) -> None:
        table = getattr(getattr(clause, "table", None), "name", None)
        if table not in ("store_order", "store_order_line") or not getattr(clause, "is_dml", False):
            return
        sets = [clause.compile(dialect=conn.dialect).params, *(multiparams or []), params or {}]
        for values in sets:
            for column in self.COLUMNS:
                value = values.get(column) if isinstance(values, dict) else None
                if isinstance(value, float):
                    self.seen.append((f"{table}.{column}", value))


async def _store_state(engine: Any) -> tuple[dict[int, int], int, int]:
    from sqlalchemy import func, select

    from course.apps.store_orders import stock, store_order, store_order_line

    async with engine.connect() as conn:
        quantities = dict((await conn.execute(select(stock.c.track_id, stock.c.quantity))).all())
        orders = await conn.scalar(select(func.count()).select_from(store_order))
        lines = await conn.scalar(select(func.count()).select_from(store_order_line))
    return quantities, orders, lines


def _exact(value: Any) -> Decimal | None:
    """A JSON amount (a string or a number) as an exact Decimal; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _line_tracks(order: Any) -> Any:
    if isinstance(order, dict) and isinstance(order.get("lines"), list):
        return [line.get("track_id") if isinstance(line, dict) else line
                for line in order["lines"]]
    return None


def _lines_of(order: Any) -> Any:
    """An order's lines as (track_id, quantity) pairs, or None when it has no list of lines."""
    if isinstance(order, dict) and isinstance(order.get("lines"), list):
        return [(line.get("track_id"), line.get("quantity")) if isinstance(line, dict) else line
                for line in order["lines"]]
    return None


class _StockRace(RaceGate):
    """Makes a race between orders certain instead of likely: each request waits, up to 3 s, at
    its first write until every request has reached its own write, finished, or (on PostgreSQL)
    waits for a lock another one holds. So every read a request made before writing was made
    before any of them wrote.

    On SQLite the gate is the first write of any kind (the single writer serialises the rest);
    on PostgreSQL it is the first write to `stock` (an UPDATE, or a SELECT ... FOR UPDATE), so
    an answer that reads the stock after inserting its order is caught too."""

    def __init__(self, engines: list, requests: int, observer: Any = None) -> None:
        super().__init__(engines, requests)
        self.observer = observer  # the check's own engine on PostgreSQL, None on SQLite
        self.arrived: set[int] = set()
        self.finished = 0
        self.poller: asyncio.Task | None = None

    def _is_gate(self, statement: str) -> bool:
        head = " ".join(statement.replace('"', "").split()).upper()
        if self.observer is None:
            return head.startswith(("INSERT", "UPDATE", "DELETE"))
        return head.startswith("UPDATE STOCK ") or (head.startswith("SELECT")
                                                     and "FOR UPDATE" in head
                                                     and " STOCK" in head)

    def arrive(self, conn: Any, statement: str) -> bool:
        if not self._is_gate(statement) or id(conn) in self.arrived:
            return False
        self.arrived.add(id(conn))
        return True

    def count(self) -> int:
        return len(self.arrived) + self.finished

    async def _poll_lock_waits(self) -> None:
        """PostgreSQL: requests blocked on a row or key lock count as arrived."""
        from sqlalchemy import text

        waits = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event_type = 'Lock'")
        async with self.observer.connect() as conn:
            while not self.all_arrived.is_set():
                waiting = await conn.scalar(waits)
                if self.count() + waiting >= self.requests:
                    self.all_arrived.set()
                await asyncio.sleep(0.01)

    async def run(self, attempt: Any) -> Any:
        """Await one request of the race, and count it finished when it ends."""
        try:
            return await attempt
        finally:
            self.finished += 1
            if self.count() >= self.requests:
                self.all_arrived.set()

    def __enter__(self) -> _StockRace:
        super().__enter__()
        if self.observer is not None:
            self.poller = asyncio.ensure_future(self._poll_lock_waits())
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self.poller is not None:
            self.poller.cancel()
