"""A check's time limit, which never counts the course's own set-up.

Starting PostgreSQL, cloning a database or building a SQLite copy can take seconds on a busy
machine. That time is the course's, not the learner's: code that does it runs inside
`not_counted()`, which stops the running check's clock for as long as it takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

_limit: ContextVar[asyncio.Timeout | None] = ContextVar("course_check_limit", default=None)


@asynccontextmanager
async def limited(seconds: float) -> AsyncIterator[asyncio.Timeout]:
    """`asyncio.timeout(seconds)` that not_counted() can pause: the check's time limit."""
    async with asyncio.timeout(seconds) as timeout:
        token = _limit.set(timeout)
        try:
            yield timeout
        finally:
            _limit.reset(token)


@asynccontextmanager
async def not_counted() -> AsyncIterator[None]:
    """Run course set-up without spending the running check's time limit (if any)."""
    timeout = _limit.get()
    when = timeout.when() if timeout is not None else None
    if timeout is None or when is None or timeout.expired():
        yield
        return
    loop = asyncio.get_running_loop()
    remaining = max(when - loop.time(), 0.0)
    timeout.reschedule(None)
    try:
        yield
    finally:
        timeout.reschedule(loop.time() + remaining)
