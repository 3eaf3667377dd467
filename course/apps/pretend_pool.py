"""Lesson 02's pretend database, for its workbook and its checks: a dozen Chinook track names,
and a pool whose connections answer one query (`fetch_name`) after a short wait on the event
loop. The pool keeps count of what was lent and given back, which the q6 check reads."""

from __future__ import annotations

import asyncio
from typing import Any

TRACKS = {
    1: "For Those About To Rock (We Salute You)", 2: "Balls to the Wall", 3: "Fast As a Shark",
    4: "Restless and Wild", 5: "Princess of the Dawn", 6: "Put The Finger On You",
    7: "Let's Get It Up", 8: "Inject The Venom", 9: "Snowballed", 10: "Evil Walks",
    11: "C.O.D.", 12: "Breaking The Rules",
}


class Connection:
    """A pretend connection: `await conn.fetch_name(track_id)` is its one query."""

    def __init__(self, pool: Pool, number: int) -> None:
        self._pool = pool
        self.number = number
        self.running = 0  # queries in flight on this connection

    async def fetch_name(self, track_id: int) -> str:
        self._pool.queries += 1
        self._pool.query_started.set()
        self.running += 1
        task = asyncio.current_task()
        if task is not None:
            self._pool.query_tasks.add(task)
        try:
            await asyncio.sleep(self._pool.query_wait)
        finally:
            self.running -= 1
        if track_id not in TRACKS:
            raise LookupError(f"no track {track_id}")
        return TRACKS[track_id]

    def __repr__(self) -> str:
        return f"<Connection {self.number}>"


class Pool:
    """A pretend pool: `await pool.acquire()` lends a connection, `await pool.release(conn)`
    takes it back. `out` counts the connections lent and not yet given back."""

    def __init__(self, query_wait: float = 0.005, acquire_error: Exception | None = None) -> None:
        self.query_wait = query_wait
        self.acquire_error = acquire_error  # raised by acquire(), like a pool's timeout
        self.query_started = asyncio.Event()
        self.queries = 0
        self.lent: set[Connection] = set()
        self.double_release = False
        self.released_busy = False  # given back while a query still ran on it
        self.query_tasks: set[asyncio.Task[Any]] = set()
        self._made = 0

    async def acquire(self) -> Connection:
        await asyncio.sleep(0)
        if self.acquire_error is not None:
            raise self.acquire_error
        self._made += 1
        conn = Connection(self, self._made)
        self.lent.add(conn)
        return conn

    async def release(self, conn: Connection) -> None:
        await asyncio.sleep(0)
        if conn not in self.lent:
            self.double_release = True
        if conn.running:
            self.released_busy = True
        self.lent.discard(conn)

    @property
    def out(self) -> int:
        return len(self.lent)

    async def stop_queries(self) -> None:
        """Cancel any query an answer left running (a shielded one), so none outlives the check."""
        left = [t for t in self.query_tasks if not t.done() and t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
