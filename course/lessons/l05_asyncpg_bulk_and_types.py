"""Checks for exercises/05-asyncpg-bulk-and-types-workbook.ipynb."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from course import synthetic
from course.checking.checks import Exercise, LearnerError, Wrong, _describe, call
from course.db.postgres import drop_postgres, fresh_postgres
from course.probes import close_pool


class _Spy:
    """A connection stand-in that forwards everything to a real asyncpg connection and records
    which methods the learner called (name and keyword arguments), so a check can see *how*
    the work was done, not only its result. Methods are recorded when called, awaited or not."""

    WATCHED = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare",
               "copy_records_to_table", "copy_to_table", "add_listener", "remove_listener",
               "set_type_codec")

    def __init__(self, conn: asyncpg.Connection, wrap_result: dict[str, Any] | None = None) -> None:
        self._conn = conn
        self._wrap_result = wrap_result or {}
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._conn, name)
        if name not in self.WATCHED:
            return target

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            result = target(*args, **kwargs)
            if name in self._wrap_result:
                return _Mapped(result, self._wrap_result[name])
            return result

        return recorded

    def count(self, name: str) -> int:
        return sum(1 for called, _, _ in self.calls if called == name)


class _Mapped:
    """An awaitable that awaits a coroutine and maps its result. Unlike a wrapping coroutine, it
    adds no warning of its own when the learner forgets `await`: the one about the real
    method (say Connection.prepare) is the one the learner needs to see."""

    def __init__(self, coro: Any, fn: Any) -> None:
        self._coro = coro
        self._fn = fn

    def __await__(self) -> Any:
        result = yield from self._coro.__await__()
        return self._fn(result)

    def __getattr__(self, name: str) -> Any:
        # Used without await: fail as the bare coroutine would, so that call() explains it.
        self._coro.close()
        raise AttributeError(f"'coroutine' object has no attribute '{name}'")


async def _with_database(label: str, body: Any) -> str:
    """Run body(db) on a fresh database, and drop it afterwards."""
    db = await fresh_postgres(label)
    try:
        return await body(db)
    finally:
        await drop_postgres(db)


# --- q1: a COPY loader ------------------------------------------------------------------------

# The staging table has a column before the five and one after them, both with defaults: tuples
# of five values fit only when COPY is told which columns they fill. The check loads two tables,
# the second with a name that needs quoting, so that a name written into the code shows.
STAGING = "staging_lines"
SECOND_STAGING = "Staging Lines Q2"
STAGING_DDL = """
    CREATE UNLOGGED TABLE {table} (
        batch text NOT NULL DEFAULT 'check',
        invoice_line_id integer NOT NULL,
        invoice_id integer NOT NULL,
        track_id integer NOT NULL,
        unit_price numeric(10, 2) NOT NULL,
        quantity integer NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
    )
"""
COLUMNS = ", ".join(synthetic.INVOICE_LINE_COLUMNS)
LOAD_SIZE = 2_000
COPY_EXAMPLE = ("`await conn.copy_records_to_table(table, records=rows, columns=...)` (or "
                "copy_to_table from a file-like source)")


def _quoted(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


class _CopySpy(_Spy):
    """A _Spy that also counts the rows each COPY call added to the staging table (its row count
    before and after the call), so that rows loaded another way cannot pass for copied ones."""

    COPIES = ("copy_records_to_table", "copy_to_table")

    def __init__(self, conn: asyncpg.Connection, table: str) -> None:
        super().__init__(conn)
        self.copied = 0
        self.count_sql = f"SELECT count(*) FROM {_quoted(table)}"  # noqa: S608 -- a table of the check

    def __getattr__(self, name: str) -> Any:
        method = super().__getattr__(name)
        if name not in self.COPIES:
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            return _Counted(method(*args, **kwargs), self)

        return counted

    def copies(self) -> int:
        return sum(self.count(name) for name in self.COPIES)


class _Counted(_Mapped):
    """Awaits a COPY coroutine between two counts of the staging table, and adds the difference
    to spy.copied. Not awaited, it leaves the warning about the real method, as _Mapped does."""

    def __init__(self, coro: Any, spy: _CopySpy) -> None:
        super().__init__(coro, lambda result: result)
        self._spy = spy

    def __await__(self) -> Any:
        conn = self._spy._conn
        before = yield from conn.fetchval(self._spy.count_sql).__await__()
        result = yield from self._coro.__await__()
        self._spy.copied += (yield from conn.fetchval(self._spy.count_sql).__await__()) - before
        return result


async def _check_load_lines(load_lines) -> str:
    async def body(db) -> str:
        conn = await asyncpg.connect(db.dsn)
        try:
            for table in (STAGING, SECOND_STAGING):
                await conn.execute(STAGING_DDL.format(table=_quoted(table)))
            await _load_case(conn, load_lines, STAGING, LOAD_SIZE, seed=5)
            await _load_case(conn, load_lines, SECOND_STAGING, random.randint(1, 300),
                             seed=random.randint(6, 10_000))
            empty = await call(load_lines, _Spy(conn), STAGING, iter(()))
            if empty != 0:
                raise Wrong(f"with no rows, load_lines should load nothing and return 0, not "
                            f"{empty!r}.")
            return (f"{LOAD_SIZE} rows, then a random number into a table whose name needs "
                    "quoting, all in by COPY from a generator, into the right columns.")
        finally:
            await conn.close()

    return await _with_database("check_05_q1", body)


async def _load_case(conn: asyncpg.Connection, load_lines, table: str, size: int, seed: int) -> None:
    spy = _CopySpy(conn, table)
    rows = synthetic.invoice_lines(size, seed=seed)  # a generator, as in a real import
    what = f"load_lines(conn, {table!r}, rows)"
    try:
        got = await call(load_lines, spy, table, rows)
    except LearnerError as exc:
        copies = [kw for name, _, kw in spy.calls if name in _CopySpy.COPIES]
        if copies and not any(kw.get("columns") for kw in copies):
            raise Wrong("the table has more columns than your tuples (a `batch` column first, a "
                        "`loaded_at` column last, both with defaults), so COPY must be told which "
                        "columns the five values fill: pass columns=synthetic.INVOICE_LINE_COLUMNS "
                        "(or the list of the five names).") from None
        if "has no len()" in str(exc):
            raise Wrong("rows is a generator here (as in a real import), so len(rows) and "
                        "rows[i] fail. Pass it straight to records=, which accepts any iterable.") from None
        named = [(args[0] if args else kw.get("table_name")) for name, args, kw in spy.calls
                 if name in _CopySpy.COPIES]
        quoted = [t for t in named if isinstance(t, str) and t != table and t.startswith('"')]
        if quoted and isinstance(exc.__cause__, asyncpg.UndefinedTableError):
            raise Wrong(f"you gave COPY the table name already quoted, {quoted[0]!r}, and it "
                        f"quoted it again, so PostgreSQL looked for a table whose name includes "
                        f"the quotes ({exc}). Pass the bare name, `table`: "
                        "copy_records_to_table quotes it for you.") from None
        if table == SECOND_STAGING and isinstance(exc.__cause__, asyncpg.PostgresError):
            raise Wrong(f"{what} failed ({exc}): the table's name has spaces and capitals, so "
                        "it must be quoted as an identifier. Pass the name to COPY as it is "
                        "(copy_records_to_table quotes it); don't write it into SQL "
                        "yourself.") from None
        raise
    count_sql = spy.count_sql
    statements = spy.count("execute") + spy.count("fetchval") + spy.count("fetch")
    if not spy.copies():
        if spy.count("executemany"):
            raise Wrong("you loaded the rows with executemany: that works, but this exercise asks "
                        f"for COPY, the fastest way in: {COPY_EXAMPLE}.")
        if statements >= 100:
            raise Wrong(f"you ran one statement per row ({statements} statements for {size} "
                        f"rows): each waits for a round trip. Send them all at once with COPY: "
                        f"{COPY_EXAMPLE}.")
        raise Wrong(f"the rows must go in with COPY: {COPY_EXAMPLE}.")
    count = await conn.fetchval(count_sql)
    if count != size:
        other = await conn.fetchval(f"SELECT count(*) FROM {_quoted(STAGING)}")  # noqa: S608 -- a table of the check
        if table != STAGING and count == 0:
            raise Wrong(f"{what} put nothing into {table!r} (the {STAGING!r} table now holds "
                        f"{other} rows): load into the table named by the `table` argument, "
                        "not one written into your code.")
        raise Wrong(f"the table {table!r} holds {count} rows after loading {size}: every row "
                    "must land, once.")
    if spy.copied != size:
        other = ("executemany" if spy.count("executemany") else
                 "INSERT statements" if statements else "another way")
        raise Wrong(f"only {spy.copied} of the {size} rows arrived through COPY; the others "
                    f"went in by {other}. Load every row with COPY: {COPY_EXAMPLE}.")
    stored = await conn.fetch(f"SELECT {COLUMNS} FROM {_quoted(table)} ORDER BY invoice_line_id")  # noqa: S608 -- fixed names
    if synthetic.checksum(stored) != synthetic.checksum(synthetic.invoice_lines(size, seed=seed)):
        raise Wrong("the rows in the table differ from the rows given: load the tuples as they "
                    "are, into the five columns in the order of synthetic.INVOICE_LINE_COLUMNS.")
    if await conn.fetchval(f"SELECT count(*) FROM {_quoted(table)} WHERE batch <> 'check'"):  # noqa: S608 -- fixed names
        raise Wrong("the `batch` column should keep its default: copy into the five columns only.")
    if isinstance(got, str):
        raise Wrong(f"load_lines returned {got!r}, the status string of COPY; return the number "
                    "of rows as an int: `int(status.split()[-1])`.")
    if not isinstance(got, int) or isinstance(got, bool) or got != size:
        raise Wrong(f"{what} should return the number of rows it loaded, {size} (an int), not "
                    f"{got!r}. Read it from the status COPY returns, 'COPY {size}'.")
    if conn.is_in_transaction():
        raise Wrong("load_lines left its connection inside an open transaction, so nothing is "
                    "committed: use `async with conn.transaction():`, or none (COPY is one "
                    "statement, all or nothing already).")


q1 = Exercise(
    "q1", "load_lines", _check_load_lines,
    hints=["One call does it all: `await conn.copy_records_to_table(table, records=rows, "
           "columns=...)`. It accepts any iterable of tuples, a generator included.",
           "The table has extra columns with defaults, so name the five your tuples fill: "
           "`columns=synthetic.INVOICE_LINE_COLUMNS`.",
           "copy_records_to_table returns a status string such as 'COPY 2000'; return "
           "`int(status.split()[-1])`."],
    title="A COPY loader",
)


# --- q2: a pool whose every connection speaks JSON --------------------------------------------

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


# --- q3: one prepared statement for a stream of lookups ---------------------------------------

LOOKUP_IDS = [3, 2819, 1, 999_999, 3503, 1, 3165]
FREE_TRACK = 3165  # the check makes it free: a price of 0.00 is a price, not None


class _Arriving:
    """Ids that arrive one at a time, as from a queue or a socket. It notes whether the next id
    was asked for before the one before it had been looked up (`looked_up` grows with each run
    of the prepared statement): then the ids were collected first, and looked up afterwards."""

    def __init__(self, ids: list[int], looked_up: list[Any]) -> None:
        self.ids = ids
        self.looked_up = looked_up
        self.read_ahead = False

    def __aiter__(self) -> AsyncIterator[int]:
        return self._ids()

    async def _ids(self) -> AsyncIterator[int]:
        start = len(self.looked_up)
        for position, track_id in enumerate(self.ids):
            if len(self.looked_up) - start < position:
                self.read_ahead = True
            await asyncio.sleep(0)
            yield track_id


async def _arriving(ids: list[int]) -> AsyncIterator[int]:
    """Yield ids one at a time, as if they arrived from a queue or a socket."""
    for track_id in ids:
        await asyncio.sleep(0)
        yield track_id


class _StatementSpy:
    """A prepared statement that records the first argument of each run, when the run method is
    called (merely looking it up, `stmt.fetchval`, records nothing): the ids it looked up."""

    RUNS = ("fetch", "fetchrow", "fetchval", "cursor")
    BATCH_RUNS = ("fetchmany", "executemany")  # one run per tuple of arguments

    def __init__(self, stmt: Any, looked_up: list[Any]) -> None:
        self._stmt = stmt
        self._looked_up = looked_up

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._stmt, name)
        if name not in self.RUNS + self.BATCH_RUNS:
            return target

        def recorded(*args: Any, **kwargs: Any) -> Any:
            if name in self.RUNS:
                self._looked_up.append(args[0] if args else None)
            else:
                args = (list(args[0]), *args[1:]) if args else args  # a generator runs once
                self._looked_up.extend(_first(each) for each in (args[0] if args else ()))
            return target(*args, **kwargs)

        return recorded


def _first(arguments: Any) -> Any:
    """The first of one run's arguments, given as a tuple or a list."""
    return arguments[0] if isinstance(arguments, tuple | list) and arguments else None


def _missing(ids: list[int], looked_up: list[Any]) -> list[int]:
    """The ids (with repeats) for which the statement did not run; == only, for any argument."""
    left = list(looked_up)
    missing = []
    for track_id in ids:
        if track_id in left:
            left.remove(track_id)
        else:
            missing.append(track_id)
    return missing


async def _check_prices_for(prices_for) -> str:
    async def body(db) -> str:
        conn = await asyncpg.connect(db.dsn)
        try:
            return await _prices_cases(conn, prices_for, db.dsn)
        finally:
            await conn.close()

    return await _with_database("check_05_q3", body)


async def _prices_cases(conn: asyncpg.Connection, prices_for, dsn: str) -> str:
    await conn.execute("UPDATE track SET unit_price = 0 WHERE track_id = $1", FREE_TRACK)
    prices = dict(await conn.fetch("SELECT track_id, unit_price FROM track"))
    looked_up: list[Any] = []
    spy = _Spy(conn, wrap_result={"prepare": lambda stmt: _StatementSpy(stmt, looked_up)})
    arriving = _Arriving(LOOKUP_IDS, looked_up)
    got = await call(prices_for, spy, arriving)
    expected = [prices.get(i) for i in LOOKUP_IDS]
    if not isinstance(got, list):
        raise Wrong(f"prices_for should return a list of prices, not {type(got).__name__}.")
    if got != expected and got == [price or None for price in expected]:
        raise Wrong(f"prices_for returned None for track {FREE_TRACK}, which exists and is free: "
                    "its price is Decimal('0.00'), which is falsy, and a truthiness test (`price or None`, "
                    "`if price:`) makes it None. fetchval already gives None for a missing track: "
                    "return what it gives.")
    if got != expected:
        raise Wrong(f"prices_for returned {got!r}; expected {expected!r}: one price per id, in "
                    "the order the ids arrive, None for a track that does not exist.")
    prepared = spy.count("prepare")
    direct = spy.count("fetchval") + spy.count("fetchrow") + spy.count("fetch")
    if prepared == 0:
        queries = f"{direct} quer{'y' if direct == 1 else 'ies'}"
        raise Wrong(f"you ran {queries} on the connection and prepared nothing. This "
                    "exercise is about the explicit form: `stmt = await conn.prepare(sql)` once, "
                    "then `await stmt.fetchval(track_id)` for each id.")
    if prepared > 1:
        raise Wrong(f"you prepared {prepared} statements for {len(LOOKUP_IDS)} ids: preparing is "
                    "the expensive part. Prepare once, before the loop, and reuse the statement.")
    if missing := _missing(LOOKUP_IDS, looked_up):
        elsewhere = (f"; your {direct} lookups went through the connection (conn.fetchval and "
                     "the like), which does not use your statement" if direct else "")
        raise Wrong(f"the prepared statement ran for {len(LOOKUP_IDS) - len(missing)} of the "
                    f"{len(LOOKUP_IDS)} ids{elsewhere}. Run the statement itself once per id as "
                    "the ids arrive: `await stmt.fetchval(track_id)`.")
    if arriving.read_ahead:
        raise Wrong("prices_for read the next id before looking up the one before: it collected "
                    "the ids first and looked them up afterwards. Look each id up as it arrives, "
                    "inside the `async for`, so that its price does not wait for the ids after "
                    "it (a stream may be slow, or long).")
    if await call(prices_for, _Spy(conn), _arriving([])) != []:
        raise Wrong("with no ids, prices_for should return an empty list.")
    await _second_connection(dsn, prices_for, prices)
    return ("one statement prepared per call, on the connection given, run once per id as it "
            "arrives.")


async def _second_connection(dsn: str, prices_for, prices: dict[int, Any]) -> None:
    """Called again on another connection, with other ids: a statement belongs to the
    connection that prepared it, so this call must prepare its own."""
    other = await asyncpg.connect(dsn)
    try:
        ids = random.sample(range(1, 3504), 5) + [999_999]
        random.shuffle(ids)
        looked_up: list[Any] = []
        spy = _Spy(other, wrap_result={"prepare": lambda stmt: _StatementSpy(stmt, looked_up)})
        got = await call(prices_for, spy, _Arriving(ids, looked_up))
        expected = [prices.get(i) for i in ids]
        if spy.count("prepare") != 1 or _missing(ids, looked_up):
            raise Wrong("called again on another connection, prices_for prepared "
                        f"{spy.count('prepare')} statement(s) there, and ran its lookups "
                        "elsewhere: a statement kept from an earlier call (in a global, say) "
                        "belongs to the connection that prepared it. Prepare it in each call, on "
                        "the connection you are given.")
        if got != expected:
            raise Wrong(f"called again with the ids {ids}, prices_for returned {got!r}; expected "
                        f"{expected!r}.")
    finally:
        await other.close()


q3 = Exercise(
    "q3", "prices_for", _check_prices_for,
    hints=["Prepare before the loop: `stmt = await conn.prepare(\"SELECT unit_price FROM track "
           "WHERE track_id = $1\")`.",
           "The ids arrive from an async iterator: `async for track_id in track_ids:`.",
           "Inside the loop, `prices.append(await stmt.fetchval(track_id))`; fetchval gives "
           "None when no row matches."],
    title="One prepared statement for a stream of lookups",
)


# --- q4: LISTEN/NOTIFY ------------------------------------------------------------------------

# Every wait of this check is counted in steps of the loop's own progress, not read off a clock:
# a stall of the machine delays one step, and never turns a right answer into a wrong one.
STEP = 0.1
WAIT = 3.0  # seconds of progress: generous, the notifications arrive within milliseconds
# After the n-th payload has reached the callback, the check sends one more notification each
# time the previous one has reached it, for as long as the code still listens. Code that waits
# for n returns, and stops listening, on the next turns of the loop, before one of them can
# arrive (each needs a round trip through the server); code that sleeps instead lets them come.
PINGS = 5
# The interrupted case sends one notification, then nothing for this long before it cancels:
# longer than any timeout per notification the check accepts (5 s, a common pick, is rejected).
PAUSE = 5.5


async def _progress(seconds: float, *waited: asyncio.Future[Any]) -> bool:
    """Wait until one of `waited` is done, for at most `seconds` of the loop's progress (in STEP
    steps: a stall of the machine costs one step). Return whether one is done."""
    for _ in range(round(seconds / STEP)):
        done, _ = await asyncio.wait(waited, timeout=STEP, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return True
    return any(w.done() for w in waited)


def _sleeping(task: asyncio.Task[Any]) -> bool:
    """Whether the task is suspended inside asyncio.sleep() (its own coroutines, not children)."""
    awaited: Any = task.get_coro()
    while awaited is not None:
        if getattr(awaited, "cr_code", None) is asyncio.sleep.__code__:
            return True
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return False


class _ListenerSpy(_Spy):
    """Sets `listening` once a real add_listener has completed, and counts the payloads that
    reach the learner's callbacks (through a wrapper of the same kind, sync or async)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self.listening = asyncio.Event()
        self.stopping = asyncio.Event()  # remove_listener was called
        self.arrived = asyncio.Event()   # a payload reached a callback (cleared by the sender)
        self.delivered = 0
        self.added: list[tuple[str, Any]] = []
        self.removed: list[tuple[str, Any]] = []
        self._wrappers: dict[Any, Any] = {}

    def _counted(self, callback: Any) -> Any:
        if not callable(callback):
            return callback  # asyncpg says what is wrong with it
        try:
            return self._wrappers.setdefault(callback, self._wrap(callback))
        except TypeError:  # an unhashable callable: counted, but never found again
            return self._wrap(callback)

    def _wrap(self, callback: Any) -> Any:
        def seen() -> None:
            self.delivered += 1
            self.arrived.set()

        if inspect.iscoroutinefunction(callback):
            async def counted_async(*args: Any) -> Any:
                seen()
                return await callback(*args)

            return counted_async

        def counted(*args: Any) -> Any:
            seen()
            return callback(*args)

        return counted

    def __getattr__(self, name: str) -> Any:
        if name == "add_listener":
            def add_listener(channel: str, callback: Any) -> Any:
                self.calls.append((name, (channel, callback), {}))

                async def add_listener() -> None:  # named so: a missing await names it
                    await self._conn.add_listener(channel, self._counted(callback))
                    self.added.append((channel, callback))
                    self.listening.set()

                return add_listener()

            return add_listener
        if name == "remove_listener":
            def remove_listener(channel: str, callback: Any) -> Any:
                self.calls.append((name, (channel, callback), {}))
                self.stopping.set()

                async def remove_listener() -> None:  # named so: a missing await names it
                    wrapper = self._wrappers.get(callback, callback) if _hashable(callback) else callback
                    await self._conn.remove_listener(channel, wrapper)
                    self.removed.append((channel, callback))

                return remove_listener()

            return remove_listener
        return super().__getattr__(name)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


async def _send_when_listening(spy: _ListenerSpy, sender: asyncpg.Connection, channel: str,
                               payloads: list[str], gaps: list[float] | None = None,
                               waiting: asyncio.Task[Any] | None = None) -> bool:
    """Send the payloads once the learner listens, after the given pause before each one. Then,
    while `waiting` runs and listens, ping: one more notification each time the previous one
    reached the callback, PINGS at most."""
    listening = asyncio.ensure_future(spy.listening.wait())
    try:
        if not await _progress(WAIT, listening, *([waiting] if waiting else [])) or not spy.listening.is_set():
            return False
    finally:
        listening.cancel()
    for position, payload in enumerate(payloads):
        if gaps and gaps[position]:
            await asyncio.sleep(gaps[position])
        await sender.execute("SELECT pg_notify($1, $2)", channel, payload)
    if waiting is None:
        return True
    stopping = asyncio.ensure_future(spy.stopping.wait())
    try:
        for ping in range(PINGS + 1):
            while spy.delivered < len(payloads) + ping:  # the previous one is still on its way
                spy.arrived.clear()
                arrived = asyncio.ensure_future(spy.arrived.wait())
                try:
                    await asyncio.wait({arrived, stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrived.cancel()
                if stopping.done() or waiting.done():
                    return True
            if ping < PINGS:
                await sender.execute("SELECT pg_notify($1, $2)", channel, f"ping {ping + 1}")
    finally:
        stopping.cancel()
    return True


def _slow_gaps() -> list[float]:
    """Pauses before each of the slow case's five notifications: irregular, under a second."""
    return [0.0, random.uniform(0.2, 0.4), random.uniform(0.6, 0.9), random.uniform(0.4, 0.6), 0.0]


async def _check_collect_notifications(collect_notifications) -> str:
    async def body(db) -> str:
        conn = await asyncpg.connect(db.dsn)
        sender = await asyncpg.connect(db.dsn)
        try:
            for channel, n in (("price_changes", 3), ("Price Changes", 2)):
                await _listen_case(conn, sender, collect_notifications, channel, n)
                await _not_listening(conn, channel, "returned")
            await _listen_case(conn, sender, collect_notifications, "slow lane", 4, slow=True)
            await _not_listening(conn, "slow lane", "returned")
            await _listen_case(conn, sender, collect_notifications, "none wanted", 0)
            await _not_listening(conn, "none wanted", "returned")
            await _interrupted_case(conn, sender, collect_notifications, "stock", 3)
            await _not_listening(conn, "stock", "was interrupted")
            return ("listened, collected exactly n payloads in order (an empty one, and ones "
                    "that arrived slowly, included), returned once the n-th came (before a "
                    "notification sent after it could arrive), waited through a pause of "
                    f"{PAUSE:g} s "
                    "without giving up, and stopped listening when interrupted.")
        finally:
            await sender.close()
            await conn.close()

    return await _with_database("check_05_q4", body)


def _own_timeout(exc: LearnerError, what: str) -> Wrong | LearnerError:
    """A TimeoutError raised by the learner's own code (nobody cancelled it) while it waited."""
    if not isinstance(exc.__cause__, TimeoutError):
        return exc
    return Wrong(f"collect_notifications raised TimeoutError {what}: a timeout inside it (per "
                 "notification, or one of its own) gave up although more were coming. Wait "
                 "for all n with no timeout: the caller sets the deadline (asyncio.timeout "
                 "around the call).")


async def _listen_case(conn: asyncpg.Connection, sender: asyncpg.Connection,
                       collect_notifications, channel: str, n: int, slow: bool = False) -> None:
    """Send n + 1 notifications once the learner listens: at once, or (slow) with irregular
    pauses, an empty payload and one full of separators among them; then ping while it listens."""
    spy = _ListenerSpy(conn)
    payloads = [json.dumps({"track_id": i, "channel": channel}) for i in range(1, n + 2)]
    gaps = None
    if slow:
        payloads[1:3] = ["", 'a,b;c "quoted" \\ back\tslash']
        gaps = _slow_gaps()
    waiting = asyncio.ensure_future(call(collect_notifications, spy, channel, n))
    sending = asyncio.create_task(_send_when_listening(spy, sender, channel, payloads, gaps, waiting))
    asleep = False
    try:
        if await _progress(WAIT * 2, waiting, sending) and not waiting.done():
            asleep = _sleeping(waiting)  # the sender stopped first: the pings were all sent
            await _progress(WAIT * 2, waiting)
        finished = waiting.done()
    finally:
        if not sending.done():
            sending.cancel()
        if not waiting.done():
            waiting.cancel()
        await asyncio.gather(sending, waiting, return_exceptions=True)
    if not finished:
        if spy.count("add_listener") and not spy.added:
            raise Wrong("add_listener was called but never awaited, so nothing listens: put "
                        "`await` in front of conn.add_listener(...).")
        if not spy.count("add_listener"):
            raise Wrong("collect_notifications waited, but never called conn.add_listener(channel, "
                        "callback), so no notification could reach it.")
        if n == 0:
            raise Wrong(f"collect_notifications(conn, {channel!r}, 0) did not return within "
                        f"{WAIT * 2:g} s: with n = 0 there is nothing to wait for, so return []. "
                        "(A loop that awaits queue.get() before testing how many it has waits "
                        "for one too many.)")
        raise Wrong(f"collect_notifications did not return within {WAIT * 2:g} s although "
                    f"{spy.delivered} notifications reached your callback: does it put each "
                    "payload on the queue (queue.put_nowait(payload)), and do you await "
                    "queue.get() n times?")
    try:
        got = waiting.result()
    except LearnerError as exc:
        raise _own_timeout(exc, f"after {min(spy.delivered, n)} of {n} notifications"
                           + (" that came with pauses under a second" if slow else "")) from None
    if n and not spy.count("add_listener"):
        raise Wrong("collect_notifications never called conn.add_listener(channel, callback): "
                    "listen first, then wait for the payloads.")
    if not isinstance(got, list):
        raise Wrong(f"collect_notifications should return a list of payload strings, not "
                    f"{type(got).__name__}.")
    expected = payloads[:n]
    if got != expected:
        if "" in expected and got == [p for p in payloads if p][:n]:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r}: the empty "
                        "payload '' was dropped. A notification may carry an empty payload and "
                        "still counts: put every payload on the queue (`if payload:` tests "
                        "truthiness).")
        if slow and len(got) < n:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {len(got)} "
                        "payload(s) when the notifications came slowly (pauses under a second "
                        f"between them); expected {n}. Wait until "
                        "n have arrived, however long each takes: await queue.get() n times, "
                        "with no fixed sleep and no timeout per item (the caller sets the "
                        "deadline).")
        if len(got) != n:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {len(got)} "
                        f"payloads; expected the first {n} of the {n + 1} sent. Await queue.get() "
                        "exactly n times.")
        raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r}; expected the "
                    f"payload strings as sent, in order: {expected!r}.")
    if n and spy.delivered >= len(payloads) + PINGS:
        raise Wrong(f"after the n-th notification had reached your callback, collect_notifications "
                    f"went on listening while {PINGS} more arrived, one after another"
                    + (", sleeping in asyncio.sleep()" if asleep else "") + ". Return as soon as "
                    "n payloads are in: await queue.get() n times, rather than sleeping a fixed "
                    "time or polling.")
    leftover = [added for added in spy.added if added not in spy.removed]
    if leftover:
        raise Wrong("your listener is still registered after collect_notifications returned, so "
                    "the connection keeps receiving (and your callback keeps running). Call "
                    "`await conn.remove_listener(channel, callback)` in a finally: block.")
    if conn.is_in_transaction():
        raise Wrong("collect_notifications left the connection inside a transaction; "
                    "notifications are delivered between transactions, so listen outside one.")


async def _not_listening(conn: asyncpg.Connection, channel: str, when: str) -> None:
    """The server side: the connection must no longer LISTEN on any channel."""
    channels = await conn.fetchval("SELECT array_agg(c) FROM pg_listening_channels() AS c")
    if channels:
        raise Wrong(f"after collect_notifications {when}, the connection still listens on "
                    f"{', '.join(repr(c) for c in channels)} (SELECT pg_listening_channels() "
                    "lists it), so the server keeps sending it notifications. Let add_listener "
                    "and remove_listener send LISTEN and UNLISTEN; don't run LISTEN yourself.")


async def _interrupted_case(conn: asyncpg.Connection, sender: asyncpg.Connection,
                            collect_notifications, channel: str, n: int) -> None:
    """Send one notification of the n awaited, pause PAUSE s (of the loop's progress), then
    cancel the call, as the caller's timeout would."""
    spy = _ListenerSpy(conn)
    waiting = asyncio.ensure_future(call(collect_notifications, spy, channel, n))
    stopping = asyncio.ensure_future(spy.stopping.wait())
    try:
        if not await _send_when_listening(spy, sender, channel, ["only one"]):
            if waiting.done():
                waiting.result()  # its error, if any, says more
            raise Wrong("collect_notifications never finished add_listener when called a third "
                        "time: put `await` in front of conn.add_listener(...).")
        await _progress(PAUSE, waiting, stopping)
        for _ in range(20):  # a timeout that fired at the pause's end gets its turns
            await asyncio.sleep(0)
        if stopping.done() and not waiting.done():  # it gave up by itself: let it finish
            await _progress(WAIT, waiting)
        if waiting.done():
            try:
                got = waiting.result()
            except LearnerError as exc:
                raise _own_timeout(exc, f"after 1 of {n} notifications, during a pause of "
                                   f"{PAUSE:g} s, before anything cancelled it") from None
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r} after only "
                        f"one notification, during a pause of {PAUSE:g} s and before anything "
                        "cancelled it: a timeout inside it (per notification, or one of its own) "
                        f"gave up. Wait until all {n} have arrived; the caller sets the deadline.")
    finally:
        stopping.cancel()
        waiting.cancel()
        outcome = (await asyncio.gather(waiting, return_exceptions=True))[0]
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled after 1 of {n} notifications (as a timeout would), "
                    f"collect_notifications returned {outcome!r} instead of letting the "
                    "CancelledError through: the caller thinks all arrived. Stop listening in "
                    "`finally:`, and let the cancellation reach the caller (no `except "
                    "CancelledError`, or a bare `raise` in it).")
    leftover = [added for added in spy.added if added not in spy.removed]
    if leftover:
        raise Wrong(f"when the wait was interrupted (cancelled after 1 of {n} notifications, as a "
                    "timeout would), your listener stayed registered. Put `await "
                    "conn.remove_listener(channel, callback)` in a finally: block, so it runs even "
                    "when the waiting is interrupted.")


q4 = Exercise(
    "q4", "collect_notifications", _check_collect_notifications,
    limit=30.0,
    hints=["Make an `asyncio.Queue()`, and a plain callback `def on_notify(connection, pid, "
           "channel, payload): queue.put_nowait(payload)`.",
           "`await conn.add_listener(channel, on_notify)`, then `[await queue.get() for _ in "
           "range(n)]`.",
           "Wrap the waiting in try/finally, and in finally: `await conn.remove_listener(channel, "
           "on_notify)`, so the connection stops listening even on error or cancellation."],
    title="Collect notifications, then stop listening",
)

