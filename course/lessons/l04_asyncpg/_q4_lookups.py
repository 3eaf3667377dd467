"""q4: concurrent lookups through a pool."""

from __future__ import annotations

import asyncio
import inspect
import random

import asyncpg

from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.db.postgres import drop_postgres, fresh_postgres
from course.probes import checked_out, close_pool

POOL_SIZE = 3
SECOND_POOL_SIZE = 5  # a second pool, so that a number of workers fixed in the code shows
SMALL_CASE = [3, 999_999, 1]  # no more ids than connections: a leak cannot hang the check
BIG_CASE = [8, 3, 5, 999_999, 2, 7, 5, 1, 4, 6]
# 2**31 does not fit PostgreSQL's integer: asyncpg raises DataError. Its lookup is among the
# first three to get a connection; the others are still at work, or waiting for one, when it fails.
FAILING_CASE = [1, 2, 2**31, 3, 4, 5, 6, 7]


class _Acquisitions:
    """A pool's `setup=` hook: counts acquisitions and the most connections out at once. It
    holds each acquisition a moment, so that lookups started together are in flight together."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.peak = 0
        self.count = 0
        self.in_setup = 0  # a connection counts as checked out only once its setup is done

    @property
    def in_use(self) -> int:
        return checked_out(self.pool) + self.in_setup

    async def __call__(self, conn: asyncpg.Connection) -> None:
        self.count += 1
        self.in_setup += 1
        try:
            self.peak = max(self.peak, self.in_use)
            await asyncio.sleep(0.02)
            self.peak = max(self.peak, self.in_use)
        finally:
            self.in_setup -= 1


async def _settled(pool: asyncpg.Pool) -> int:
    """Connections still checked out once the other lookups had time to finish (up to 1 s)."""
    for _ in range(100):
        if not checked_out(pool):
            return 0
        await asyncio.sleep(0.01)
    return checked_out(pool)


async def _lookup_case(pool: asyncpg.Pool, seen: _Acquisitions, names: dict[int, str],
                       lookup_many, ids: list[int]) -> None:
    seen.peak = 0
    try:
        got = await call(lookup_many, pool, list(ids))
    except LearnerError as exc:
        if isinstance(exc.__cause__, BaseExceptionGroup):
            raise _group_opened(exc.__cause__, ids) from None
        raise
    if left := checked_out(pool):
        raise Wrong(f"{left} connection(s) were still checked out after lookup_many "
                    "returned: each acquire needs its release. Use `async with "
                    "pool.acquire() as conn:`, which releases even on error.")
    expected = [names.get(i) for i in ids]
    if not isinstance(got, list):
        raise Wrong(f"lookup_many should return a list of names, not {type(got).__name__}.")
    if any(inspect.iscoroutine(item) for item in got):
        for item in got:
            if inspect.iscoroutine(item):
                item.close()
        raise Wrong("your list holds coroutine objects, not names: did you forget `await`?")
    if got != expected:
        if sorted(map(str, got)) == sorted(map(str, expected)):
            raise Wrong(f"lookup_many(pool, {ids}) returned the right names in another order; "
                        "keep the input order (a TaskGroup's tasks in a list, or gather, keep "
                        "it).")
        raise Wrong(f"lookup_many(pool, {ids}) returned {got!r}; expected {expected!r} (None for "
                    "a track that does not exist).")
    wanted = min(pool.get_max_size(), len(ids))
    if len(ids) > 1 and seen.peak < 2:
        raise Wrong(f"the lookups ran one at a time (at most {seen.peak} connection in use). "
                    "Start them all at once, each task acquiring its own connection from the "
                    "pool.")
    if seen.peak < wanted:
        raise Wrong(f"lookup_many(pool, {ids}) kept at most {seen.peak} connections at work, "
                    f"though the pool has {pool.get_max_size()} and there were {len(ids)} ids: a "
                    "fixed number of workers leaves the others idle. Start one task per id and "
                    "let the pool hand out what it has (it never gives more than max_size).")


def _group_opened(group: BaseExceptionGroup, ids: list[int]) -> Wrong:
    """Say what a TaskGroup's ExceptionGroup holds, rather than only that it was raised."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        inner = inner.exceptions[0]
    shown = f"lookup_many(pool, {ids}) raised an ExceptionGroup holding {type(inner).__name__}: {inner}"
    if isinstance(inner, TypeError) and "'NoneType'" in str(inner) and 999_999 in ids:
        return Wrong(f"{shown}. Track 999999 does not exist: fetchrow returns None for it, and "
                     "reading a column from None raises that TypeError. Give None for a missing "
                     "track: fetchval returns None when no row matches (or test the row for None).")
    return Wrong(f"{shown}. One lookup failed, and the TaskGroup passed its error on; only a "
                 "real failure may escape (a missing track gives None).")


def _lookups_still_running(before: set[asyncio.Task]) -> int:
    """Tasks the answer started that are still running now, leaving out asyncpg's own (a
    cancelled lookup's connection is handed back, and the pool refilled, in the background)."""
    return sum(1 for task in asyncio.all_tasks() - before
               if not task.done() and not _is_asyncpgs(task))


def _is_asyncpgs(task: asyncio.Task) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/asyncpg/" in code.co_filename.replace("\\", "/")  # the package


async def _failing_case(pool: asyncpg.Pool, seen: _Acquisitions, lookup_many) -> None:
    before = asyncio.all_tasks()
    try:
        got = await call(lookup_many, pool, list(FAILING_CASE))
    except LearnerError as exc:
        cause = exc.__cause__
        data_error = isinstance(cause, asyncpg.DataError) or (
            isinstance(cause, BaseExceptionGroup) and cause.subgroup(asyncpg.DataError) is not None)
        if not data_error:
            raise
    else:
        raise Wrong(f"lookup_many(pool, {FAILING_CASE}) returned {got!r}, but track id {2**31} "
                    "does not fit PostgreSQL's integer and its lookup raises asyncpg.DataError: "
                    "let the error reach the caller.")
    running = seen.in_use
    acquired = seen.count
    still_running = _lookups_still_running(before)
    if left := await _settled(pool):
        raise Wrong(f"when one lookup failed (track id {2**31} is too large for an integer), "
                    f"{left} connection(s) stayed checked out for good: the failing task never "
                    "gave its connection back. Use `async with pool.acquire() as conn:`, which "
                    "releases even on error (or put pool.release in a finally: block).")
    # The proof is in the tasks and the pool: lookups still running when the error reached the
    # caller, or acquiring connections afterwards. (Connections merely in use at that instant are
    # not: a TaskGroup's cancelled lookups may still be handing theirs back on a busy machine.)
    if still_running or seen.count > acquired:
        raise Wrong(f"when one lookup failed, lookup_many raised while the other lookups were "
                    f"still running ({running} connection(s) in use, "
                    f"{seen.count - acquired} more acquired afterwards). Plain gather does that: "
                    "it raises the first error and leaves the rest running (lesson 02). Use a "
                    "TaskGroup, which cancels the others and waits for them before the error "
                    "reaches the caller.")


async def _check_lookup_many(lookup_many) -> str:
    db = await fresh_postgres("check_04_q4")
    pools: list[asyncpg.Pool] = []
    try:
        names = None
        for size in (POOL_SIZE, SECOND_POOL_SIZE):
            seen = _Acquisitions()
            pool = await asyncpg.create_pool(db.dsn, min_size=size, max_size=size, setup=seen)
            seen.pool = pool
            pools.append(pool)
            if names is None:
                names = dict(await pool.fetch("SELECT track_id, name FROM track"))
            if size == POOL_SIZE:
                for ids in (SMALL_CASE, BIG_CASE, []):
                    await _lookup_case(pool, seen, names, lookup_many, ids)
                await _failing_case(pool, seen, lookup_many)
            else:
                ids = random.sample(range(1, 3504), 12) + [999_999]
                random.shuffle(ids)
                await _lookup_case(pool, seen, names, lookup_many, ids)
        return (f"as many connections at work as the pool has ({POOL_SIZE}, then "
                f"{SECOND_POOL_SIZE}), none leaked; on an error, nothing left running.")
    finally:
        for pool in pools:
            await close_pool(pool)
        await drop_postgres(db)


q4 = Exercise(
    "q4", "lookup_many", _check_lookup_many,
    hints=["Write a small `async def one(track_id)` that acquires a connection, asks for the "
           "name, and gives the connection back.",
           "Inside it: `async with pool.acquire() as conn: return await conn.fetchval(\"SELECT name "
           "FROM track WHERE track_id = $1\", track_id)`. fetchval gives None when no row matches.",
           "`async with asyncio.TaskGroup() as tg: tasks = [tg.create_task(one(i)) for i in "
           "track_ids]`, then `return [task.result() for task in tasks]`: the lookups run "
           "together, the list keeps the input order, the pool never hands out more than "
           "max_size, and if one lookup fails the group cancels the others and waits for them "
           "before raising."],
    title="Concurrent lookups through a pool",
)
