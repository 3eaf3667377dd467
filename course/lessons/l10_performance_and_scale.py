"""Checks for exercises/10-performance-and-scale-workbook.ipynb.

Every check judges behaviour, never a stopwatch: how many connections a pool lent at once, on
which thread a blocking call ran, how many calls were in flight, how many SQL statements a
request cost. Each check builds its own app (or engine) and database, and calls the learner's
function more than once, with inputs the workbook never shows.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from course.checking.backends import backend_name, on_each_backend
from course.checking.checks import Exercise, LearnerError, TooBusy, Wrong, call
from course.db.engines import Backend, fresh_engine_url
from course.probes import InFlight, LoopWitness, StatementCounter


def _client(app: FastAPI) -> httpx.AsyncClient:
    """An in-process client: requests go straight to the app, no port, no server."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop")


async def _get(client: httpx.AsyncClient, path: str, params: Any = None) -> httpx.Response:
    """One request; an exception raised in the learner's route becomes a one-line not yet."""
    return await call(client.get, path, params=params)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _status(response: httpx.Response, path: str, wanted: int) -> None:
    if response.status_code != wanted:
        # FastAPI's own 404, when no route matches, says only "Not Found"
        unmatched = response.status_code == 404 and _json(response) == {"detail": "Not Found"}
        raise Wrong(f"GET {path} answered {response.status_code} {_json(response)!r}; expected "
                    f"{wanted}." + (" That is FastAPI's answer when no route matches the path "
                                    "(or an HTTPException(404) without a detail): is the route's "
                                    "path exactly as asked?" if unmatched and wanted == 200 else ""))


# --- q1: a pool sized by Little's law -----------------------------------------------------

# (requests per second, milliseconds each request holds a connection) -> connections needed
# (100, 70) and (25, 280) need 7: 100 * (70 / 1000) is 7.000000000000001 in floating point.
# (3, 1) needs 0.003 connections: still one.
POOL_CASES = [(200, 50), (55, 20), (100, 70), (30, 100), (7, 1000), (25, 280), (1000, 3), (3, 1)]


def _needed(rate: int, latency_ms: int) -> int:
    return math.ceil(rate * latency_ms / 1000)


async def _check_sized_engine(sized_engine) -> str:
    url = await fresh_engine_url("check-10-q1")  # a SQLite file: cheap connections
    for rate, latency_ms in POOL_CASES:
        await _pool_case(sized_engine, url, rate, latency_ms)
    return ("each pool holds rate × latency connections, rounded up, and lends no more: "
            "checked by holding them all at once.")


def _capacity(pool: Any) -> float:
    overflow = getattr(pool, "_max_overflow", 0)
    return math.inf if overflow < 0 else pool.size() + overflow


async def _pool_case(sized_engine, url: Any, rate: int, latency_ms: int) -> None:
    shown = f"sized_engine(url, rate={rate}, latency_ms={latency_ms})"
    engine = await call(sized_engine, url, rate, latency_ms)
    if not isinstance(engine, AsyncEngine):
        if hasattr(engine, "dispose") and hasattr(engine, "pool"):
            engine.dispose()
            raise Wrong(f"{shown} returned a synchronous {type(engine).__name__}: use "
                        "create_async_engine(url, ...), which gives an AsyncEngine.")
        raise Wrong(f"{shown} should return the AsyncEngine that create_async_engine() makes, "
                    f"not {type(engine).__name__}.")
    try:
        await _judge_pool(engine, url, shown, rate, latency_ms)
    finally:
        await engine.dispose()


async def _judge_pool(engine: AsyncEngine, url: Any, shown: str, rate: int, latency_ms: int) -> None:
    if engine.url.database != url.database:
        raise Wrong(f"{shown} made an engine for another database ({engine.url.database!r}): "
                    "pass the url you were given to create_async_engine.")
    pool = engine.sync_engine.pool
    needed = _needed(rate, latency_ms)
    if not hasattr(pool, "size") or not hasattr(pool, "checkedout"):
        raise Wrong(f"{shown} uses a {type(pool).__name__}, which keeps no connections for the "
                    "next request (NullPool opens and closes one per checkout). Keep the default "
                    "queue pool and set pool_size.")
    size = pool.size()
    floating = math.ceil(rate * (latency_ms / 1000))
    if size != needed and size == floating:
        raise Wrong(f"{shown} has pool_size={size}, but {rate} × {latency_ms} / 1000 is "
                    + (f"exactly {needed}" if rate * latency_ms % 1000 == 0 else
                       f"{rate * latency_ms / 1000:g}, rounded up {needed}")
                    + f". In floating point {latency_ms}/1000 is not exactly "
                    f"{latency_ms / 1000:g}, so {rate} × ({latency_ms}/1000) = "
                    f"{rate * (latency_ms / 1000)!r}, which math.ceil rounds up to {size}. "
                    "Multiply the integers first, then divide once: `math.ceil(rate * latency_ms "
                    "/ 1000)`, or all in integers, `-(-rate * latency_ms // 1000)`.")
    if size == rate * latency_ms and size != needed:
        raise Wrong(f"{shown} has pool_size={size}: the latency is in milliseconds. Little's "
                    f"law wants seconds: {rate} × {latency_ms}/1000 = {rate * latency_ms / 1000:g} "
                    f"connections, so {needed}.")
    if size == rate and size != needed:
        raise Wrong(f"{shown} has pool_size={size}, the request rate: that ignores how long each "
                    f"request holds its connection. Connections in use = rate × latency = "
                    f"{rate} × {latency_ms / 1000:g} s, rounded up: {needed}.")
    capacity = _capacity(pool)
    peak = await _hold_all(engine, min(needed + 1, capacity))
    if peak < needed:
        exact = rate * latency_ms / 1000
        why = (f"{exact:g} connections are busy on average, and a fraction of a connection "
               "does not exist: round up (math.ceil)" if size == math.floor(exact) else
               f"Little's law says rate × latency = {exact:g} are busy at once, so {needed}")
        held = f"{peak} request could" if peak == 1 else f"{peak} requests could"
        raise Wrong(f"{shown}: only {held} hold a connection at once, the others "
                    f"queued for the pool. {why}.")
    if size != needed and capacity == needed:
        raise Wrong(f"{shown} reaches {needed} connections with pool_size={size} plus overflow: "
                    "overflow connections are closed as soon as they come back, and reopened on "
                    f"the next burst. Keep them all: pool_size={needed}, max_overflow=0.")
    if peak > needed:
        extra = getattr(pool, "_max_overflow", 0)
        raise Wrong(f"{shown} lent {peak} connections at once when {needed} should be the most: "
                    + (f"pool_size={size} is more than rate × latency needs." if size > needed else
                       f"max_overflow={extra if extra >= 0 else 'unlimited'} lets the pool open "
                       "more (and close them again after each burst). Set max_overflow=0, so "
                       "the pool is a hard limit the database can count on."))
    if pool.checkedout():
        raise RuntimeError("the check's own connections did not come back")


async def _hold_all(engine: AsyncEngine, holders: float) -> int:
    """Start `holders` tasks that each keep a connection until told; return the most held at
    once, once every task that the pool allows has its connection."""
    holders = int(holders)
    release = asyncio.Event()
    held = 0
    peak = 0
    pool = engine.sync_engine.pool

    async def hold() -> None:
        nonlocal held, peak
        async with engine.connect() as conn:
            await conn.execute(select(1))
            held += 1
            peak = max(peak, held)
            await release.wait()
            held -= 1

    tasks = [asyncio.create_task(hold()) for _ in range(holders)]
    try:
        expected = min(holders, int(_capacity(pool)) if _capacity(pool) < math.inf else holders)
        for _ in range(3000):  # up to ~30 s on a very busy machine: connecting runs in threads
            if held >= expected or any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        else:
            raise TooBusy()
        for t in tasks:
            if t.done() and (error := t.exception()) is not None:
                raise error
        return peak
    finally:
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)


q1 = Exercise(
    "q1", "sized_engine", _check_sized_engine, limit=60,
    hints=["Little's law: connections busy at once = requests per second × seconds each request "
           "holds a connection. The latency is given in milliseconds.",
           "Round up with math.ceil: 1.1 busy connections need 2. Multiply the integers before "
           "you divide: the lesson showed a float product landing a step too high. Then pass "
           "pool_size=that number to create_async_engine, and max_overflow=0 so the pool is a "
           "hard limit.",
           "`return create_async_engine(url, pool_size=math.ceil(rate * latency_ms / 1000), "
           "max_overflow=0)`"],
    title="A pool sized by Little's law",
)


# --- q2: a route that must not block ------------------------------------------------------

# Track 604's name is the empty string: a name all the same, so 200, not 404.
NAMES = {7: "Princess of the Dawn", 3503: "Koyaanisqatsi", 42: "O'Brien \"live\"",
         2048: "x' OR '1'='1", 1: "For Those About To Rock (We Salute You)", 977: "Ünïcødé ✓",
         604: ""}
MISSING = [9999, 0]


async def _check_add_name_route(add_name_route) -> str:
    for ids in ([7, 3503, 42, 9999], [2048, 1, 977, 0, 604, 7, 42]):
        await _name_case(add_name_route, ids)
    return ("the blocking lookups ran in worker threads, several at once, and the event loop "
            "stayed free.")


async def _name_case(add_name_route, ids: list[int]) -> None:
    witness = LoopWitness(add_name_route)
    on_loop: list[bool] = []
    state = {"now": 0, "peak": 0, "waited": False}
    odd_args: list[Any] = []  # what lookup() got that is not an int track id
    lock = threading.Lock()
    second = threading.Event()

    def lookup(track_id: int) -> str | None:
        """A synchronous driver call: it holds whichever thread runs it."""
        if type(track_id) is not int:
            odd_args.append(track_id)
        if witness.on_loop_thread():
            on_loop.append(True)
            return NAMES.get(track_id)
        on_loop.append(False)
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            # Only the first lookup of the case waits for a second one: when lookups are
            # serialised, each later one would wait in vain too (3 s a request).
            first = state["now"] == 1 and not second.is_set() and not state["waited"]
            state["waited"] = state["waited"] or first
            if state["now"] >= 2:
                second.set()
        try:
            verdict = witness.wait_in_thread()  # is the loop free while this call runs?
            if first and verdict != "held":  # a held loop starts no second lookup: no wait
                second.wait(3.0)  # a second lookup arrives at once if they run side by side
            return NAMES.get(track_id)
        finally:
            with lock:
                state["now"] -= 1

    app = FastAPI()
    await call(add_name_route, app, lookup)
    async with _client(app) as client:
        try:
            responses = await asyncio.gather(*(_get(client, f"/tracks/{i}/name") for i in ids))
        except LearnerError as exc:
            if isinstance(exc.__cause__, TypeError) and "callable" in str(exc.__cause__):
                raise Wrong(_not_a_function(exc.__cause__, any(on_loop))) from None
            raise
    if any(on_loop):
        raise Wrong("lookup() ran on the event loop's own thread: while it waited, no other "
                    "request could be served. Declare the route with plain `def` (FastAPI runs it "
                    "in a worker thread), or `await asyncio.to_thread(lookup, track_id)`.")
    if witness.held:
        raise Wrong("lookup() ran in another thread, but your route waited for it without "
                    "awaiting (future.result(), thread.join()), which holds the loop just the "
                    "same. Await it: `await asyncio.to_thread(lookup, track_id)`.")
    if odd_args:
        got = odd_args[0]
        raise Wrong(f"lookup() was called with {got!r}, a {type(got).__name__}, not an int "
                    "track id, so it found no track. Most likely the route declares the path "
                    "parameter without a type or as `str`: declare `track_id: int`, and FastAPI "
                    "converts the path's text to an int (and answers 422 to text that is not one).")
    for track_id, response in zip(ids, responses, strict=True):
        path = f"/tracks/{track_id}/name"
        if NAMES.get(track_id) == "" and response.status_code == 404:
            raise Wrong(f"GET {path} answered 404 {_json(response)!r}, but lookup({track_id}) "
                        "returned '', an empty name, not None. Only None means the track does not "
                        "exist: test `if name is None`, not `if not name`, which an empty string "
                        "also fails.")
        if track_id in NAMES:
            _status(response, path, 200)
            wanted = {"track_id": track_id, "name": NAMES[track_id]}
            if _json(response) != wanted:
                raise Wrong(f"GET {path} returned {_json(response)!r}; expected {wanted!r}.")
        else:
            wanted = {"detail": f"track {track_id} not found"}
            if response.status_code != 404 or _json(response) != wanted:
                raise Wrong(f"GET {path}, a track that does not exist, answered "
                            f"{response.status_code} {_json(response)!r}; expected 404 "
                            f"{wanted!r}: raise HTTPException(status_code=404, detail=...) when "
                            "lookup() returns None.")
    if len(on_loop) != len(ids):
        raise Wrong(f"lookup() ran {len(on_loop)} times for {len(ids)} requests: once per request.")
    if state["peak"] < 2:
        raise Wrong(f"the {len(ids)} requests' lookups ran one at a time, in worker threads: "
                    "something serialises them (a lock, a one-thread executor). Let FastAPI's "
                    "thread pool or asyncio.to_thread run them side by side.")
    if witness.busy:
        raise TooBusy()


def _not_a_function(error: TypeError, called_on_loop: bool) -> str:
    """A thread helper was handed a value where it wanted a function: say what that means."""
    seen = ("lookup() ran on the event loop's own thread, and then " if called_on_loop else "")
    likely = "" if called_on_loop else "most likely "
    return (f"{seen}your route raised TypeError: {str(error).splitlines()[0]}. A thread helper "
            f"(asyncio.to_thread, run_in_threadpool, run_in_executor) was {likely}given a value, "
            "not a function: `to_thread(lookup(track_id))` calls lookup right away, on the loop, "
            "and passes its result. Pass the function and its argument separately: "
            "`await asyncio.to_thread(lookup, track_id)`.")


q2 = Exercise(
    "q2", "add_name_route", _check_add_name_route, limit=30,
    hints=["lookup() is synchronous: called inside `async def`, it holds the event loop's only "
           "thread until it returns, and every other request waits.",
           "Either declare the route with plain `def`, which FastAPI runs in its thread pool, or "
           "keep `async def` and `await asyncio.to_thread(lookup, track_id)`.",
           "`@app.get(\"/tracks/{track_id}/name\")` / `def track_name(track_id: int) -> dict:` / "
           "`name = lookup(track_id)`; `if name is None: raise HTTPException(status_code=404, detail=f\"track "
           "{track_id} not found\")`; `return {\"track_id\": track_id, \"name\": name}`"],
    title="A route that does not block",
)


# --- q3: a fan-out bounded across requests ------------------------------------------------

# (limit, id lists sent at the same time): a loop without a semaphore, one semaphore per
# request and one call at a time per request each give another peak than `limit`. Some ids
# repeat within a request: each must appear in the answer as often as it was asked for.
FANOUT_CASES = [
    (4, [[3, 9, 1, 12, 5, 7], [2, 11, 4, 8, 6, 10], [31, 17, 23, 31, 13, 29, 19]]),
    (2, [[5, 1, 8, 3, 5, 2, 13, 1, 34]]),
    (5, [[40, 3, 27, 9, 81], [64, 16, 4, 2, 8, 32, 1]]),
]


def _preview(track_id: int) -> str:
    return f"preview of track {track_id}"


async def _check_add_previews_route(add_previews_route) -> str:
    for limit, requests in FANOUT_CASES:
        await _fanout_case(add_previews_route, limit, requests)
    return "never more than `limit` previews fetched at once, across all requests, all slots used."


async def _fanout_case(add_previews_route, limit: int, requests: list[list[int]]) -> None:
    probe = InFlight()
    total = sum(len(ids) for ids in requests)
    finished: list[int] = []
    owner = {i: r for r, ids in enumerate(requests) for i in ids}  # ids differ between requests
    running = [0] * len(requests)
    per_request = [0]  # the most calls of one request seen in flight together

    @probe.track
    async def fetch_preview(track_id: int) -> str:
        mine = owner.get(track_id)
        if mine is not None:
            running[mine] += 1
            per_request[0] = max(per_request[0], running[mine])
        try:
            return await _slow_preview(track_id)
        finally:
            if mine is not None:
                running[mine] -= 1

    async def _slow_preview(track_id: int) -> str:
        # Wait until every call that can start has started: all of them, or no new one for 200
        # turns of the event loop (counted in turns, so a busy machine changes nothing).
        last, still = -1, 0
        while probe.started < total and still < 200:
            still = still + 1 if probe.started == last else 0
            last = probe.started
            await asyncio.sleep(0)
        await asyncio.sleep(0.001 * (track_id % 4))  # finish in another order than started
        finished.append(track_id)
        return _preview(track_id)

    app = FastAPI()
    await call(add_previews_route, app, fetch_preview, limit)
    async with _client(app) as client:
        responses = await asyncio.gather(
            *(_get(client, "/previews", params={"ids": ids}) for ids in requests))
    shown = f"limit={limit}, {len(requests)} request(s) at once"
    for ids, response in zip(requests, responses, strict=True):
        path = f"/previews?ids={'&ids='.join(map(str, ids))}"
        if response.status_code == 422 and _read_from_body(response):
            raise Wrong(f"GET {path} answered 422: FastAPI looked for `ids` in the request body "
                        "(its error's loc is ['body', ...]), because a list parameter is read "
                        "from the body unless told otherwise. Declare it as a query parameter: "
                        "`ids: Annotated[list[int], Query()]`.")
        _status(response, path, 200)
        got, wanted = _json(response), [_preview(i) for i in ids]
        if got != wanted:
            if isinstance(got, list) and len(got) < len(wanted) and set(map(str, got)) == set(wanted):
                raise Wrong(f"GET {path} returned {len(got)} previews for {len(ids)} ids: an id "
                            "asked for twice must be in the answer twice, each in its place "
                            "(one result per id of the request, in their order).")
            if isinstance(got, list) and sorted(map(str, got)) == sorted(wanted):
                mine = set(ids)
                as_finished = [_preview(i) for i in finished if i in mine]
                how = ("in the order the calls finished" if got == as_finished
                       else "in another order than the ids'")
                raise Wrong(f"GET {path} returned the right previews {how}; keep the order of "
                            "the ids (gather returns results in argument order).")
            raise Wrong(f"GET {path} returned {got!r}; expected the list {wanted!r}.")
    distinct = sum(len(set(ids)) for ids in requests)
    if not distinct <= probe.started <= total:
        raise Wrong(f"fetch_preview ran {probe.started} times for {total} ids ({distinct} "
                    "different within each request): once per id.")
    if probe.peak > limit:
        if probe.peak == probe.started:
            why = "nothing limited them: every call started at once"
        elif len(requests) > 1 and probe.peak <= limit * len(requests) and probe.peak > limit + 1:
            why = (f"each request kept to {limit} of its own (its own semaphore, or batches of "
                   f"{limit}), so every concurrent request brought {limit} more. The limit is for "
                   "the whole app: create one asyncio.Semaphore(limit) in add_previews_route, "
                   "outside the route function, and share it")
        else:
            why = f"your limit lets {probe.peak} in, not {limit}"
        raise Wrong(f"{shown}: {probe.peak} fetch_preview calls ran at once, more than {limit}: "
                    f"{why}.")
    if probe.peak < min(limit, probe.started):
        one_by_one = per_request[0] == 1
        seen = (f"the previews ran one at a time within each request ({probe.peak} at once "
                "in all)" if one_by_one else f"fetch_preview ran at most {probe.peak} at once")
        causes = (["the calls were awaited one after another instead of started together"]
                  if one_by_one else [])
        if not one_by_one or probe.peak == limit - 1:
            causes.append(f"a semaphore (or count) smaller than the limit, such as "
                          f"Semaphore(limit - 1) or Semaphore({probe.peak})")
        raise Wrong(f"{shown}: {seen}, though {limit} were allowed, leaving slots unused. "
                    f"Likely {', or '.join(causes)}. Start them all with asyncio.gather and let "
                    f"one shared asyncio.Semaphore(limit) admit {limit} at a time.")


def _read_from_body(response: httpx.Response) -> bool:
    """Did FastAPI answer 422 because it wanted the parameters in the request body?"""
    detail = _json(response)
    errors = detail.get("detail") if isinstance(detail, dict) else None
    return isinstance(errors, list) and any(
        isinstance(e, dict) and list(e.get("loc", []))[:1] == ["body"] for e in errors)


q3 = Exercise(
    "q3", "add_previews_route", _check_add_previews_route, limit=30,
    hints=["The partner service accepts `limit` calls at once from the whole app, not per "
           "request: the semaphore must be shared by every request.",
           "Create `semaphore = asyncio.Semaphore(limit)` in add_previews_route, before the "
           "route function; inside the route, wrap each call in `async with semaphore:` and "
           "gather them.",
           "`async def one(i): async with semaphore: return await fetch_preview(i)`; "
           "`return await asyncio.gather(*(one(i) for i in ids))`; the route takes "
           "`ids: Annotated[list[int], Query()]`."],
    title="A fan-out bounded across requests",
)


# --- q4: one query instead of N+1 ---------------------------------------------------------

NEW_ARTIST = 90210
# The new artist's albums and tracks are inserted out of id order, and their titles sort in
# another order still: on PostgreSQL a query without ORDER BY returns them as inserted, and
# ordering by title gives a third order (SQLite returns rowid order, which is the id here).
# Two of its albums share the title "Middle": each is an album of its own, with its own tracks.
NEW_DATA = [
    ("INSERT INTO artist (artist_id, name) VALUES (:a, :n)",
     [{"a": NEW_ARTIST, "n": "O'Brien \"live\""}, {"a": NEW_ARTIST + 1, "n": "x' OR '1'='1"}]),
    ("INSERT INTO album (album_id, title, artist_id) VALUES (:id, :t, :a)",
     [{"id": 6007, "t": "Middle", "a": NEW_ARTIST}, {"id": 4003, "t": "Zebra crossing", "a": NEW_ARTIST},
      {"id": 5001, "t": "Apples, nothing here yet", "a": NEW_ARTIST},
      {"id": 5500, "t": "Middle", "a": NEW_ARTIST}]),
    ("INSERT INTO track (track_id, name, album_id, media_type_id, milliseconds, unit_price) "
     "VALUES (:id, :n, :al, 1, 1000, 0.99)",
     [{"id": 9100, "n": "b side", "al": 4003}, {"id": 9007, "n": "Z first", "al": 4003},
      {"id": 9500, "n": "a last", "al": 4003}, {"id": 9300, "n": "only one", "al": 6007},
      {"id": 9250, "n": "the other Middle", "al": 5500}]),
]
CATALOGUE_CASES = [90, NEW_ARTIST, 1, NEW_ARTIST + 1, 123456, 25]


async def _expected_catalogue(conn: Any, artist_id: int) -> dict | None:
    name = (await conn.execute(text("SELECT name FROM artist WHERE artist_id = :a"),
                               {"a": artist_id})).scalar()
    if name is None:
        return None
    albums = (await conn.execute(text("SELECT album_id, title FROM album WHERE artist_id = :a "
                                      "ORDER BY album_id"), {"a": artist_id})).all()
    out = []
    for album_id, title in albums:
        tracks = (await conn.execute(text("SELECT name FROM track WHERE album_id = :al "
                                          "ORDER BY track_id"), {"al": album_id})).scalars().all()
        out.append({"title": title, "tracks": list(tracks)})
    return {"artist": name, "albums": out}


async def _check_add_catalogue_route(add_catalogue_route) -> str:
    # the learner's function builds two apps: one on SQLite, one on PostgreSQL, asked in another order
    async def cases(engine: AsyncEngine, backend: Backend) -> None:
        order = CATALOGUE_CASES if backend == "sqlite" else CATALOGUE_CASES[::-1]
        await _catalogue_on(add_catalogue_route, engine, backend, order)

    await on_each_backend("check_10_q4", cases, prepare=_with_new_data)
    return ("on SQLite and PostgreSQL: one statement per request, whatever the number of "
            "albums; albums and tracks in id order on rows stored out of order; empty albums, "
            "unknown artists and quoted names handled.")


async def _with_new_data(engine: AsyncEngine) -> None:
    """The check's artists, albums and tracks, stored out of id order."""
    async with engine.begin() as conn:
        for statement, rows in NEW_DATA:
            await conn.execute(text(statement), rows)


async def _catalogue_on(add_catalogue_route, engine: AsyncEngine, backend: Backend, cases: list[int]) -> None:
    async with engine.connect() as conn:
        expected = {a: await _expected_catalogue(conn, a) for a in CATALOGUE_CASES}
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session():
        async with sessionmaker() as session:
            yield session

    app = FastAPI()
    await call(add_catalogue_route, app, get_session)
    async with _client(app) as client:
        for artist_id in cases:
            try:
                await _catalogue_case(client, engine, artist_id, expected[artist_id], backend)
            except LearnerError as exc:
                if backend == "postgresql" and "does not exist" in str(exc):
                    raise Wrong(f"GET /artists/{artist_id}/catalogue failed on PostgreSQL, "
                                f"where the check runs it too: {exc}. Write the query with "
                                "select(), joins and joinedload, which SQLAlchemy turns into "
                                "each database's SQL, not with SQL that only SQLite "
                                "knows.") from None
                raise


async def _catalogue_case(client: httpx.AsyncClient, engine: AsyncEngine, artist_id: int,
                          wanted: dict | None, backend: str) -> None:
    path = f"/artists/{artist_id}/catalogue"
    with StatementCounter(engine) as counter:
        response = await _get(client, path)
    inline = re.compile(rf"(?<![\w$]){artist_id}(?!\w)")
    if any(inline.search(statement) for statement in counter.statements):
        raise Wrong(f"the artist id {artist_id} is inside your SQL text: bind it "
                    "(`Artist.artist_id == artist_id` in select(), or :artist_id with text()).")
    if wanted is None:
        detail = {"detail": f"artist {artist_id} not found"}
        if response.status_code != 404 or _json(response) != detail:
            raise Wrong(f"GET {path}, an artist that does not exist, answered "
                        f"{response.status_code} {_json(response)!r}; expected 404 {detail!r}.")
    else:
        if response.status_code == 404 and not wanted["albums"]:
            raise Wrong(f"GET {path} answered 404, but artist {artist_id} exists: it has no "
                        "albums, so the answer is 200 with \"albums\": []. Tell 'no artist' from "
                        "'no albums' (start from the artist, and join its albums with an outer "
                        "join).")
        _status(response, path, 200)
        got = _json(response)
        if got != wanted:
            raise Wrong(_catalogue_difference(f"{path} (on {backend_name(backend)})", got, wanted))
    if counter.count > 1:
        albums = len(wanted["albums"]) if wanted else 0
        if counter.count == 2 and albums > 1:
            reads = [", ".join(_tables(s)) or "?" for s in counter.statements]
            how = f"the first read {reads[0]}, the second {reads[1]}"
            if re.search(r"\bIN\s*\(", counter.statements[1], re.IGNORECASE):
                how += " with `IN (...)`, the query selectinload adds"
        elif counter.count >= albums + 1 and albums > 2:
            how = f"that is one more per album ({albums} albums): the N+1 pattern"
        else:
            reads = [", ".join(_tables(s)) or "?" for s in counter.statements]
            how = f"they read {'; '.join(reads)}"
            if reads == ["artist", "album", "track"]:
                how += (": one per level (artist, albums, tracks), as selectinload or separate "
                        "queries do; not N+1, but not the one round trip asked for")
        raise Wrong(f"GET {path} ran {counter.count} SQL statements; {how}. Load everything in "
                    "one statement: joinedload (with .unique()), or one select() with outer joins.")


def _tables(statement: str) -> list[str]:
    """The tables a SQL statement reads, in the order it names them."""
    names = re.findall(r"\b(?:FROM|JOIN)\s+\"?(\w+)", statement, re.IGNORECASE)
    return list(dict.fromkeys(name.lower() for name in names))


def _catalogue_difference(path: str, got: Any, wanted: dict) -> str:
    if not isinstance(got, dict) or set(got) != {"artist", "albums"}:
        return f"GET {path} returned {got!r}; expected an object with keys 'artist' and 'albums'."
    if got["artist"] != wanted["artist"]:
        return f"GET {path} named the artist {got['artist']!r}; expected {wanted['artist']!r}."
    mine = [a.get("title") if isinstance(a, dict) else a for a in got["albums"]]
    titles = [a["title"] for a in wanted["albums"]]
    if mine != titles:
        twice = sorted({t for t in titles if titles.count(t) > 1 and mine.count(t) == 1})
        if twice and sorted(set(map(str, mine))) == sorted(set(titles)):
            merged = [a.get("tracks") for a in got["albums"]
                      if isinstance(a, dict) and a.get("title") == twice[0]]
            return (f"GET {path} listed the albums {mine}; expected {titles}: this artist has "
                    f"{titles.count(twice[0])} albums called {twice[0]!r}, and your answer has "
                    f"one, with the tracks {merged[0]!r}. Albums that share a title are still "
                    "different albums: group the rows by album_id (or load Album objects), not "
                    "by title.")
        empty = [a["title"] for a in wanted["albums"] if not a["tracks"]]
        if [t for t in titles if t not in empty] == mine and empty:
            return (f"GET {path} left out the album(s) {empty}, which have no tracks yet, as "
                    "an inner join from albums to tracks does. Use an outer join (or joinedload, "
                    "which is one).")
        if sorted(map(str, mine)) == sorted(titles):
            return (f"GET {path} listed the albums {mine}, in another order than album_id's: "
                    "add `.order_by(Album.album_id, Track.track_id)` to a select() of your own "
                    "(joinedload follows the relationships' order_by, which is by id).")
        return f"GET {path} listed the albums {mine}; expected {titles}."
    for album, want in zip(got["albums"], wanted["albums"], strict=True):
        if album != want:
            if sorted(map(str, album.get("tracks", []))) == sorted(want["tracks"]):
                return (f"GET {path}: album {want['title']!r} lists its tracks in another order; "
                        "order them by track_id.")
            return f"GET {path}: album {want['title']!r} came back as {album!r}; expected {want!r}."
    return f"GET {path} returned {got!r}; expected {wanted!r}."


q4 = Exercise(
    "q4", "add_catalogue_route", _check_add_catalogue_route, limit=60,
    hints=["Count the statements of `catalogue_n_plus_one`: one for the artist, one for its "
           "albums, one per album for its tracks. Ask for "
           "the artist, its albums and their tracks in a single SELECT instead.",
           "joinedload loads a relationship in the same statement, with an outer join (so an "
           "artist without albums still comes back); chain it from the artist's albums to each "
           "album's tracks. A joined collection repeats the artist's row once per track: call "
           "`.unique()` on the result.",
           "`stmt = select(Artist).where(Artist.artist_id == artist_id).options(joinedload("
           "Artist.albums).joinedload(Album.tracks))`; `artist = (await "
           "session.scalars(stmt)).unique().one_or_none()`; 404 if None; then "
           "`{\"artist\": artist.name, \"albums\": [{\"title\": a.title, \"tracks\": [t.name for t "
           "in a.tracks]} for a in artist.albums]}` (the models order albums and tracks by id)."],
    title="One query instead of N+1",
)

