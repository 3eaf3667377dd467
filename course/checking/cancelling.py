"""Cancel a learner's call while the database holds it paused, as a timeout would (lessons 03
and 04; lesson 06 has a variant of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import asyncpg


async def paused_or_done(task: asyncio.Future[Any], started: asyncio.Event) -> bool:
    """Wait until the database has paused the call (`started` is set) or the call has ended,
    for 5 s at most; whether it paused."""
    waiter = asyncio.ensure_future(started.wait())
    try:
        await asyncio.wait([task, waiter], timeout=5, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return started.is_set()


async def cancel_in_pg_sleep(conn: asyncpg.Connection, observer: asyncpg.Connection,
                             call: Awaitable[Any]) -> tuple[Any, bool]:
    """Run `call` (the learner's, on conn), cancel it once conn's server process sleeps in
    pg_sleep (the check's trigger), or after 5 s, and return what came out (its value or its
    exception) and whether it paused there."""
    pid = conn.get_server_pid()
    task = asyncio.ensure_future(call)
    paused = False
    for _ in range(500):  # up to 5 s for the call to reach the row that pauses
        if task.done():
            break
        if await observer.fetchval(
                "SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1", pid):
            paused = True
            break
        await asyncio.sleep(0.01)
    task.cancel()
    return (await asyncio.gather(task, return_exceptions=True))[0], paused


def pause_trigger(name: str, event: str, table: str, track_id: int) -> str:
    """PostgreSQL DDL: a trigger `name` that sleeps 10 s in the database before `event` (INSERT
    or UPDATE) on `table` for the row of `track_id`, so that a check can cancel the call meanwhile."""
    return f"""
    CREATE FUNCTION course_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = {track_id} THEN
            PERFORM pg_sleep(10);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER {name} BEFORE {event} ON {table}
        FOR EACH ROW EXECUTE FUNCTION course_{name}();
"""
