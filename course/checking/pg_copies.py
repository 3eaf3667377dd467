"""A fresh copy of Chinook on PostgreSQL with connections to it, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from course.db.postgres import drop_postgres, fresh_postgres


@asynccontextmanager
async def connected_copy(label: str, connections: int = 1) -> AsyncIterator[list[asyncpg.Connection]]:
    """A fresh copy named after `label` and that many connections to it (the second one an
    observer that sees only what was committed); all closed, and the copy dropped, on exit."""
    db = await fresh_postgres(label)
    opened: list[asyncpg.Connection] = []
    try:
        for _ in range(connections):
            opened.append(await asyncpg.connect(db.dsn))
        yield opened
    finally:
        for conn in reversed(opened):
            await conn.close()
        await drop_postgres(db)
