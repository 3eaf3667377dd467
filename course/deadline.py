"""A check's time limit, which never counts the course's own set-up.

Starting PostgreSQL, cloning a database or building a SQLite copy can take seconds on a busy
machine. That time is the course's, not the learner's: code that does it runs inside
`not_counted()`, which stops the running check's clock for as long as it takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

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


GRACE = 10.0  # seconds a check's own clean-up may take once its time limit expired, per round


class CheckCancelled(Exception):
    """The check's task was cancelled from inside, neither by its time limit nor from outside."""


async def within(work: Awaitable[T], seconds: float, grace: float | None = None) -> T:
    """Await `work` in a task of its own under limited(seconds); raise TimeoutError if the limit
    expired, whatever `work` let out then (a bare CancelledError, another error, a result).

    A task of its own keeps the caller's count of cancellation requests exact, whatever the
    code inside leaves behind (Python 3.11's TaskGroup leaves one when a task fails during its
    exit). Clean-up after the limit is bounded: if `work` is still busy `grace` seconds later,
    it is cancelled again (asyncpg then terminates the connection it was closing), and after a
    third round left to end in the background. A cancellation of the caller (an interrupt, or
    the learner's own timeout around the check) stops `work` the same way and propagates.
    """
    loop = asyncio.get_running_loop()
    grace = GRACE if grace is None else grace
    timeout: asyncio.Timeout | None = None

    async def body() -> T:
        nonlocal timeout
        async with limited(seconds) as timeout:
            return await work

    task = loop.create_task(body())
    try:
        expired_at: float | None = None
        rounds = 0
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if task.done() or timeout is None or not timeout.expired():
                continue
            expired_at = expired_at if expired_at is not None else loop.time()
            if loop.time() - expired_at >= grace * (rounds + 1):
                rounds += 1
                if rounds == 3:
                    task.add_done_callback(_retrieve)
                    raise TimeoutError(f"the check's clean-up did not end {3 * grace:g} s after its limit")
                task.cancel()
    except asyncio.CancelledError:  # from outside: stop the check, bounded, and pass it on
        task.cancel()
        await _ended(task, grace)
        raise
    if timeout is not None and timeout.expired():
        _retrieve(task)
        raise TimeoutError(f"the check did not finish within {seconds:g} s")
    if task.cancelled() or isinstance(task.exception(), asyncio.CancelledError):
        raise CheckCancelled("the check's task was cancelled, neither by its time limit nor "
                             "from outside")
    return task.result()


async def _ended(task: asyncio.Task[Any], grace: float) -> None:
    """Wait for a cancelled task to end, a bounded time, cancelling it again once if need be."""
    for _ in range(2):
        try:
            await asyncio.wait({task}, timeout=grace)
        except asyncio.CancelledError:
            break  # cancelled again: leave now
        if task.done():
            break
        task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a task's outcome as seen, so that asyncio does not log it as never retrieved."""
    if task.done() and not task.cancelled():
        task.exception()
