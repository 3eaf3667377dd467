"""q2: a pool whose every connection speaks JSON."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import asyncpg

from course.checking.checks import Exercise, LearnerError, Wrong, _describe, call
from course.probes import close_pool

from ._common import _with_database

POOL_SIZE = 3
DOCUMENT = {"track_id": 1, "tags": ["rock", "live"], "rating": 4.5, "explicit": False}


async def _json_on(pooled: asyncpg.Connection, hold: float) -> str:
    """'ok', 'text' (jsonb arrives as str), 'no encoder', or 'decoder failed: ...' (the
    learner's decoder raised), for one pooled connection."""
    try:
        try:
            value = await pooled.fetchval("SELECT jsonb_build_object('ok', true, 'n', 3)")
        except Exception as exc:  # the learner's decoder runs inside fetchval
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise
            return f"decoder failed: {_describe(exc)}"
        if not isinstance(value, dict):
            return "text"
        try:
            back = await pooled.fetchval("SELECT $1::jsonb", DOCUMENT)
        except (asyncpg.DataError, TypeError, ValueError):
            return "no encoder"
        return "ok" if back == DOCUMENT else "no encoder"
    finally:
        await asyncio.sleep(hold)  # keep the connection, so that the others go to other tasks


LOOKUP = "SELECT name FROM artist WHERE artist_id = $1"
PREPARED_AS = "SELECT coalesce(array_agg(name::text), '{}') FROM pg_prepared_statements WHERE statement = $1"


async def _prepared_lookups(pool: asyncpg.Pool) -> dict[int, set[str]]:
    """Run one cached lookup on each pool connection at once; for each connection (server pid),
    the names under which the server holds that lookup prepared."""

    async def one(artist_id: int) -> tuple[int, set[str]]:
        async with pool.acquire(timeout=5) as pooled:
            await pooled.fetchval(LOOKUP, artist_id)
            names = set(await pooled.fetchval(PREPARED_AS, LOOKUP))
            await asyncio.sleep(0.05)  # keep the connection, so that the others go to other tasks
            return pooled.get_server_pid(), names

    return dict(await asyncio.gather(*(one(i) for i in range(1, POOL_SIZE + 1))))


async def _all_connections(pool: asyncpg.Pool) -> list[str]:
    async def one() -> str:
        async with pool.acquire(timeout=5) as pooled:
            return await _json_on(pooled, hold=0.05)

    return list(await asyncio.gather(*(one() for _ in range(POOL_SIZE))))


async def _check_make_pool(make_pool) -> str:
    async def body(db) -> str:
        pool = None
        before = _pools()
        try:
            try:
                pool = await call(make_pool, db.dsn, POOL_SIZE)
            except LearnerError as exc:
                if "unknown type" in str(exc):
                    raise Wrong("set_type_codec looked for the type in the `public` schema: "
                                "jsonb is built in, so pass schema='pg_catalog'.") from None
                raise
            remark = await _pool_cases(pool)
            await _another_pool(make_pool, db.dsn, pool)
            return remark
        finally:
            # A pool created but never awaited opened nothing, and refuses close and terminate
            # with InterfaceError('pool is not initialized').
            if isinstance(pool, asyncpg.Pool):
                with contextlib.suppress(asyncpg.InterfaceError):
                    await close_pool(pool)
            for other in _pools() - before:  # a pool made, then lost when the answer failed
                if not other.is_closing():
                    with contextlib.suppress(asyncpg.InterfaceError):
                        other.terminate()

    return await _with_database("check_05_q2", body)


async def _another_pool(make_pool, dsn: str, first: asyncpg.Pool) -> None:
    """Called again, make_pool must make a new pool, of the size asked this time."""
    size = POOL_SIZE - 1
    second = await call(make_pool, dsn, size)
    try:
        if second is first:
            raise Wrong(f"called again, make_pool(dsn, {size}) returned the very pool of the first "
                        "call: a pool kept in a global (or a cache) for later calls. Each call "
                        "makes and returns a new pool, of the size it is asked for; the caller "
                        "owns it, and closes it.")
        if not isinstance(second, asyncpg.Pool):
            raise Wrong(f"called again, make_pool returned {type(second).__name__}, not a pool.")
        if (second.get_min_size(), second.get_max_size()) != (size, size):
            raise Wrong(f"called again, make_pool(dsn, {size}) made a pool of min_size="
                        f"{second.get_min_size()}, max_size={second.get_max_size()}: use the size "
                        "you are given.")
        async with second.acquire(timeout=5) as pooled:
            state = await _json_on(pooled, hold=0)
        if state != "ok":
            raise Wrong(f"called again, make_pool(dsn, {size}) made a pool whose connections do "
                        f"not speak JSON ({state}): install the codec in every pool you make.")
    finally:
        if isinstance(second, asyncpg.Pool) and second is not first:
            with contextlib.suppress(asyncpg.InterfaceError):
                await close_pool(second)


def _pools() -> set[asyncpg.Pool]:
    """Every asyncpg pool alive in this process."""
    return {obj for obj in gc.get_objects() if isinstance(obj, asyncpg.Pool)}


async def _pool_cases(pool: Any) -> str:
    if not isinstance(pool, asyncpg.Pool):
        raise Wrong(f"make_pool should return the asyncpg.Pool itself (from `await "
                    f"asyncpg.create_pool(...)`), not {type(pool).__name__}.")
    if (pool.get_min_size(), pool.get_max_size()) != (POOL_SIZE, POOL_SIZE):
        raise Wrong(f"make_pool(dsn, {POOL_SIZE}) made a pool of min_size={pool.get_min_size()}, "
                    f"max_size={pool.get_max_size()}; pass min_size=size and max_size=size.")
    try:
        async with pool.acquire(timeout=5):
            pass
    except asyncpg.InterfaceError as exc:
        if "not initialized" not in str(exc):
            raise
        raise Wrong("make_pool returned a pool that was never started: did you forget `await`? "
                    "`return await asyncpg.create_pool(...)` opens its connections and runs "
                    "init on each.") from None
    for round_ in ("first", "after the pool replaced its connections"):
        states = await _all_connections(pool)
        failed = [state for state in states if state.startswith("decoder failed")]
        if failed:
            raise Wrong(f"reading a jsonb value, your decoder raised {failed[0].split(': ', 1)[1]}"
                        ". It should turn the JSON text it is given into Python objects "
                        "(decoder=json.loads does). If your codec has format='binary', jsonb "
                        "reaches the decoder as bytes that start with a version byte (b'\\x01'), "
                        "not as JSON text: leave the format at its default, 'text'.")
        good = states.count("ok")
        if good == POOL_SIZE:
            if round_ == "first":
                await _statements_survive_acquire(pool)
                await pool.expire_connections()  # the pool will open new connections on next use
            continue
        if "no encoder" in states and "text" not in states:
            raise Wrong("jsonb comes back as a dict, but sending a dict as a jsonb parameter "
                        "fails: give set_type_codec an encoder too, encoder=json.dumps.")
        if round_ != "first":
            raise Wrong("after the pool replaced its connections (as it does after max_queries "
                        "queries, when a connection drops, or for an idle connection above "
                        "min_size), jsonb came back as str: a codec set by hand on the "
                        "connections of the moment is lost. Install it in `init=`, which runs "
                        "on every new connection.")
        if good == 0:
            raise Wrong(f"jsonb came back as str on all {POOL_SIZE} connections: no codec is "
                        "installed. Pass init=a coroutine function that awaits "
                        "conn.set_type_codec('jsonb', encoder=json.dumps, decoder=json.loads, "
                        "schema='pg_catalog').")
        raise Wrong(f"only {good} of the pool's {POOL_SIZE} connections decode jsonb to a dict; "
                    "the others still return str. A codec belongs to one connection: install it "
                    "on every connection with create_pool(..., init=...).")
    return (f"all {POOL_SIZE} connections, and their replacements, speak JSON; prepared "
            "statements survive each acquire; a second call makes a new pool.")


async def _statements_survive_acquire(pool: asyncpg.Pool) -> None:
    """The same connection, acquired again, must reuse the statement it prepared before."""
    before = await _prepared_lookups(pool)
    after = await _prepared_lookups(pool)
    again = [pid for pid, names in after.items() if pid in before and names - before[pid]]
    if again:
        raise Wrong(f"{len(again)} of the pool's {POOL_SIZE} connections prepared the same lookup "
                    "again when acquired a second time: their statement cache was emptied in "
                    "between. set_type_codec does that each time it runs, and in `setup=` it runs "
                    "on every acquire. Put it in "
                    "`init=`, which runs once per new connection.")


q2 = Exercise(
    "q2", "make_pool", _check_make_pool,
    hints=["A codec belongs to one connection. `asyncpg.create_pool(..., init=fn)` awaits "
           "fn(conn) on every connection the pool opens, now and later.",
           "Inside make_pool, define `async def init(conn): await conn.set_type_codec('jsonb', "
           "encoder=json.dumps, decoder=json.loads, schema='pg_catalog')`.",
           "`return await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)`."],
    title="A pool whose every connection speaks JSON",
)
