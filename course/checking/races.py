"""Races between requests made certain instead of likely, and what the store lessons share.

A `RaceGate` holds each racing request at its first gate statement (a write, chosen by the
lesson) until every request has reached its own, so every read a request made before its write
was made before any of them wrote. Lessons 09 (POST /artists) and 11 (the capstone) use it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

# Artist names unique ignoring case: the database, not a lookup, judges a race for a name.
UNIQUE_NAMES = "CREATE UNIQUE INDEX IF NOT EXISTS artist_name_key ON artist (lower(name))"
BASE = "http://store.test"  # the base URL of an app served in process through httpx
GATE_SECONDS = 3.0  # how long a request waits at the gate for the others


def money(value: Any) -> str:
    """A price as the store's JSON gives it: a string with two decimals."""
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


class RaceGate:
    """Hold each of `requests` requests at its gate statement until all have arrived (or
    GATE_SECONDS pass); a subclass says which statement is the gate (`arrive`) and what counts
    as arrived (`count`)."""

    def __init__(self, engines: list[Any], requests: int) -> None:
        self.engines = [e.sync_engine for e in engines]
        self.requests = requests
        self.all_arrived = asyncio.Event()

    def arrive(self, conn: Any, statement: str) -> bool:
        """Whether this statement brings a request to the gate (and counts it)."""
        raise NotImplementedError

    def count(self) -> int:
        """The requests that are at the gate, or will not come to it."""
        raise NotImplementedError

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        from sqlalchemy.util import await_

        if not self.arrive(conn, statement):
            return
        if self.count() >= self.requests:
            self.all_arrived.set()
        else:
            await_(self._everyone_arrived())

    async def _everyone_arrived(self) -> None:
        try:
            async with asyncio.timeout(GATE_SECONDS):
                await self.all_arrived.wait()
        except TimeoutError:
            pass  # another request never reaches the gate (refused earlier, or held): go on

    def __enter__(self) -> RaceGate:
        from sqlalchemy import event

        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._before)
