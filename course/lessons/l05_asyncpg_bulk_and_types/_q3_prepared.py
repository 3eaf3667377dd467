"""q3: one prepared statement for a stream of lookups."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from course.checking.checks import Exercise, Wrong, call

from ._common import _Spy, _with_database

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
