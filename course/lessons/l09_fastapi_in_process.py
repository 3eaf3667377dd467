"""Checks for exercises/09-fastapi-in-process-workbook.ipynb.

Every check drives the learner's code the way a client would: it builds a FastAPI app around the
learner's route (or calls the learner's create_app), runs its lifespan with LifespanManager, and
sends real HTTP requests through httpx.ASGITransport, in-process, to a fresh Chinook database.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import random
import threading
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.db.engines import fresh_engine_url
from course.errors import remember
from course.probes import (
    HOSTILE_INPUTS,
    ConnectionLeaks,
    InjectedFailure,
    StatementCounter,
    checked_out,
)

UNIQUE_NAMES = "CREATE UNIQUE INDEX IF NOT EXISTS artist_name_key ON artist (lower(name))"
BASE = "http://store.test"


# --- plumbing shared by the checks ------------------------------------------------------------

async def _database(name: str, backend: str = "sqlite", *statements: tuple[str, dict]) -> Any:
    """A fresh Chinook copy with the unique index on artist names (the lesson adds the same one),
    plus any setup statements: all done before the learner's code runs."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = await fresh_engine_url(name, backend)  # type: ignore[arg-type]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(UNIQUE_NAMES))
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()
    return url


def _has_star_args(fn: Any) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


async def _mountable(fn: Any, name: str) -> None:
    """FastAPI reads a route's parameters from its signature, so *args/**kwargs cannot be a route.
    Such a function is run once directly: the untouched stub says so by raising."""
    if _has_star_args(fn):
        await call(fn)
        raise Wrong(f"{name} takes *args or **kwargs; a route's parameters are what the request "
                    "provides (path, query, body) and its dependencies: name each one.")


@asynccontextmanager
async def _served(url: Any, routes: list[tuple[str, str, Any, int | None]],
                  **engine_options: Any) -> AsyncIterator[tuple[Any, Any]]:
    """An app with a lifespan that owns an engine on `url` and yields {"sessionmaker": ...},
    the learner's routes mounted on it, and an in-process client: (client, engine)."""
    import httpx
    from asgi_lifespan import LifespanManager
    from fastapi import FastAPI
    from fastapi.exceptions import FastAPIError
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    engine = create_async_engine(url, **engine_options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}

    app = FastAPI(lifespan=lifespan)
    try:
        for path, method, fn, status in routes:
            try:
                app.add_api_route(path, fn, methods=[method], status_code=status)
            except (FastAPIError, TypeError, ValueError) as exc:
                raise Wrong(f"FastAPI could not make a route of {fn.__name__}: "
                            f"{str(exc).splitlines()[0]}") from None
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                with _LeakWatch(engine) as watch:
                    _WATCHES[client] = watch
                    try:
                        yield client, engine
                    finally:
                        left = await watch.close_all()
                    if left:
                        raise Wrong(KEPT.format(n=left))
    finally:
        await engine.dispose()


DROPPED = ("{what}: {n} connection(s) were dropped without being closed: the garbage collector "
           "found them still checked out of the pool after the request (the check closed them). "
           "Use the session the dependency gives you (`session: SessionDep`), and `async with` "
           "around any session or connection you open yourself, so it goes back to the pool.")


KEPT = ("{n} connection(s) your routes opened were never given back to the pool by the end of "
        "the check (the check closed them): a session or connection opened by hand, or kept from "
        "one request to the next, and never closed. Use the session the dependency gives you "
        "(`session: SessionDep`), which is closed after every request.")


class _LeakWatch(ConnectionLeaks):
    """ConnectionLeaks on one served app's engine, with the requests in flight counted: the
    connections dropped unclosed are settled (closed, quietly, and counted) once none is; at
    the end, close_all() closes every connection never given back, however it was kept."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.in_flight = 0
        self._all: dict[int, tuple[Any, Any, Any]] = {}

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        super()._checkout(dbapi_connection, record, proxy)
        self._all[id(record)] = self._out[id(record)]

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        super()._checkin(dbapi_connection, record)
        self._all.pop(id(record), None)

    async def close_all(self) -> int:
        """Close every connection not given back (a full collection first finds those dropped
        in a reference cycle); return how many."""
        self._out, self._all = self._all, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        return await self.settle(held=True)


_WATCHES: weakref.WeakKeyDictionary[Any, _LeakWatch] = weakref.WeakKeyDictionary()


class _BadResponse(Wrong):
    """The route returned something its response model could not serialise."""

    def __init__(self, message: str, returned_none: bool) -> None:
        super().__init__(message)
        self.returned_none = returned_none


async def _send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request, with the learner's errors turned into plain words, and the connections its
    route dropped unclosed reported (closed here, so nothing about them prints later)."""
    watch = _WATCHES.get(client)
    if watch is None:
        return await _request(client, method, path, **kwargs)
    watch.in_flight += 1
    dropped = 0
    try:
        response = await _request(client, method, path, **kwargs)
    finally:
        watch.in_flight -= 1
        if not watch.in_flight:
            dropped = await watch.settle(held=False)
    if dropped:
        raise Wrong(DROPPED.format(what=f"{method} {path}", n=dropped))
    return response


async def _request(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    from fastapi.exceptions import ResponseValidationError

    what = f"{method} {path}"
    try:
        return await call(client.request, method, path, **kwargs)
    except Wrong as exc:  # call() saw a coroutine where a result belonged: "forgot await"
        if isinstance(exc.__cause__, ResponseValidationError):
            for error in exc.__cause__.errors():
                if inspect.iscoroutine(error.get("input")):
                    error["input"].close()  # else it warns "never awaited" under a later cell
        raise
    except LearnerError as exc:
        cause = exc.__cause__
        if not isinstance(cause, ResponseValidationError):
            raise
        errors = list(cause.errors())
        inputs = [e.get("input") for e in errors]
        if any(inspect.iscoroutine(i) for i in inputs):
            for value in inputs:
                if inspect.iscoroutine(value):
                    value.close()  # it would warn "never awaited" later, under another cell
            raise Wrong(f"{what}: your route returned a coroutine object instead of the row: "
                        "did you forget `await`? Write `await session.get(...)`.") from None
        returned_none = any(i is None for i in inputs)
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "the response"
        message = str(first.get("msg", ""))
        if "greenlet" in message.lower():
            remember(cause)
            raise _BadResponse(
                f"{what}: the response model reads `{where}`, which your query did not load, so "
                "SQLAlchemy tried to load it lazily and failed (MissingGreenlet: "
                "`course.explain()` says more). Load it in the query: "
                "`options=[selectinload(...)]`.", returned_none) from None
        raise _BadResponse(f"{what}: what your route returned does not fit its response model "
                           f"({where}: {message}).", returned_none) from None


def _status(response: Any, expected: int, what: str, why: str = "") -> None:
    if response.status_code != expected:
        body = response.text if len(response.text) <= 120 else response.text[:117] + "..."
        raise Wrong(f"{what} answered {response.status_code} {body}; expected {expected}"
                    + (f": {why}" if why else "."))


def _leaks(engine: Any, what: str) -> None:
    out = checked_out(engine)
    if out:
        raise Wrong(f"after {what}, {out} connection(s) were still checked out of the pool: "
                    "most likely a session opened by hand, or kept from one request to the next, "
                    "was never closed. Use the session the dependency "
                    "gives you (`session: SessionDep`), which is closed after every request.")


def _money(value: Any) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


# --- q1: create_app, a lifespan that owns the engine ----------------------------------------

async def _state_probe(request: Request) -> dict:
    """Mounted on the learner's app: reports what the lifespan left in the request's state."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from course.models import Artist

    sessionmaker = getattr(request.state, "sessionmaker", None)
    report: dict[str, Any] = {"sessionmaker": sessionmaker,
                              "on_app": getattr(request.app.state, "sessionmaker", None)}
    if isinstance(sessionmaker, async_sessionmaker):
        async with sessionmaker() as session:
            report["artists"] = await session.scalar(select(func.count()).select_from(Artist))
    request.app.state.check_reports.append(report)
    return {}


async def _run_app(app: Any) -> dict:
    """One start-up, one request, one shutdown of the learner's app: what the request saw."""
    import httpx
    from asgi_lifespan import LifespanManager

    reports = app.state.check_reports
    before = len(reports)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            response = await client.get("/_check/state")
    if len(reports) == before:
        raise Wrong(f"the check's request to the app answered {response.status_code} "
                    f"{response.text[:100]}, before reaching its route.")
    return reports[-1]


def _engine_of(report: dict, what: str) -> Any:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    sessionmaker = report["sessionmaker"]
    if sessionmaker is None:
        if report["on_app"] is not None:
            raise Wrong(f"{what}: the sessionmaker is in app.state, but the workbook's "
                        "get_session reads request.state.sessionmaker: yield it from the "
                        "lifespan, `yield {'sessionmaker': sessionmaker}`, and the server hands "
                        "that state to every request.")
        raise Wrong(f"{what}: after start-up, request.state has no `sessionmaker`. The lifespan "
                    "should create the engine, then `yield {'sessionmaker': "
                    "async_sessionmaker(engine, expire_on_commit=False)}`.")
    if not isinstance(sessionmaker, async_sessionmaker):
        raise Wrong(f"{what}: request.state.sessionmaker is a {type(sessionmaker).__name__}; it "
                    "should be `async_sessionmaker(engine, expire_on_commit=False)`.")
    if sessionmaker.kw.get("expire_on_commit", True) is not False:
        raise Wrong(f"{what}: the sessionmaker keeps expire_on_commit=True (the default). A route "
                    "that commits and then returns the object would make FastAPI read expired "
                    "attributes, which needs SQL, and fail with MissingGreenlet: pass "
                    "`expire_on_commit=False`.")
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise Wrong(f"{what}: the sessionmaker is bound to {type(engine).__name__}, not to an "
                    "engine from create_async_engine(url).")
    return engine


def _disposed(engine: Any, what: str) -> None:
    idle, out = engine.pool.checkedin(), checked_out(engine)
    if idle or out:
        raise Wrong(f"{what}: after shutdown the engine still held {idle + out} open "
                    "connection(s): the lifespan should end with `await engine.dispose()`, after "
                    "its `yield`.")


async def _check_create_app(create_app) -> str:
    from fastapi import FastAPI

    url_a = await _database("check-09-q1a")
    url_b = await _database("check-09-q1b", "sqlite",
                            ("INSERT INTO artist (artist_id, name) VALUES (:i, :n)",
                             {"i": 9001, "n": "Only in database B"}))
    engines: list[Any] = []
    try:
        apps = []
        for url, label in ((url_a, "A"), (url_b, "B")):
            app = await call(create_app, url.render_as_string(hide_password=False))
            if not isinstance(app, FastAPI):
                raise Wrong(f"create_app(url) should return the FastAPI app; it returned "
                            f"{type(app).__name__}.")
            if app.router.on_startup or app.router.on_shutdown:
                raise Wrong("the app uses @app.on_event handlers, which are deprecated (and "
                            "ignored altogether once lifespan= is given): pass "
                            "`FastAPI(lifespan=lifespan)`, with the start-up code before the "
                            "`yield` and the shutdown code after it.")
            if apps and app is apps[0]:
                raise Wrong("create_app returned the same app object twice: build a new "
                            "FastAPI(lifespan=...) in every call.")
            app.state.check_reports = []
            app.add_api_route("/_check/state", _state_probe, methods=["GET"])
            apps.append((app, label))

        first: Any = None
        for run, (app, label) in enumerate([apps[0], apps[1], apps[0]]):
            what = f"the app for database {label}" + (", started a second time" if run == 2 else "")
            try:
                report = await call(_run_app, app)
            except LearnerError as exc:
                text = str(exc)
                if "dictionary update sequence" in text or "not iterable" in text:
                    raise Wrong("the lifespan must yield a dict, its state: "
                                "`yield {'sessionmaker': sessionmaker}`.") from None
                raise
            engine = _engine_of(report, what)
            engines.append(engine)
            expected = 276 if label == "B" else 275
            if report.get("artists") != expected:
                raise Wrong(f"{what} read {report.get('artists')} artists; database {label} has "
                            f"{expected}. create_app(url) must open its engine on the url it is "
                            "given, not on one fixed when the module ran.")
            _disposed(engine, what)
            if run == 0:
                first = engine
            elif run == 2 and engine is first:
                raise Wrong("both start-ups of one app used the same engine object, which the "
                            "first shutdown had already disposed: it was made once (when "
                            "create_app ran, or at the first start-up and then kept) and not "
                            "again. Create a new one inside the lifespan, before `yield`, every "
                            "time the lifespan runs, so that each start-up owns the engine that "
                            "its shutdown disposes.")
    finally:
        for engine in engines:
            await engine.dispose()
    return ("three start-ups on two databases: each made its own engine from the url it was "
            "given, yielded an async_sessionmaker, and disposed the engine at shutdown.")


q1 = Exercise(
    "q1", "create_app", _check_create_app,
    hints=["A lifespan is one function for the app's whole life: what runs before its `yield` "
           "runs at start-up, what runs after it at shutdown, and what it yields becomes every "
           "request's `request.state`. Define it inside create_app, so that it sees `url`.",
           "Start-up makes the engine from `url` and an async_sessionmaker on it with "
           "expire_on_commit=False, and yields the dict {'sessionmaker': ...}; shutdown disposes "
           "of the engine, in a `finally:`. create_app returns `FastAPI(lifespan=...)`.",
           "`@asynccontextmanager async def lifespan(app: FastAPI):` / `engine = "
           "create_async_engine(url)` / `try: yield {'sessionmaker': async_sessionmaker(engine, "
           "expire_on_commit=False)}` / `finally: await engine.dispose()`; then `return "
           "FastAPI(lifespan=lifespan)`."],
    title="A lifespan that owns the engine",
)


# --- q2: GET /albums/{album_id} ----------------------------------------------------------------

Q2_SETUP = [
    ("INSERT INTO artist (artist_id, name) VALUES (:i, :n)", {"i": 9001, "n": "O'Brien & the \"Keys\""}),
    ("INSERT INTO album (album_id, title, artist_id) VALUES (:i, :t, :a)", {"i": 9001, "t": "Gaps", "a": 9001}),
    ("INSERT INTO album (album_id, title, artist_id) VALUES (:i, :t, :a)", {"i": 9007, "t": "Silence", "a": 9001}),
    # inserted out of track_id order, with names and lengths that sort in two other orders: on
    # PostgreSQL a query without ORDER BY returns them as inserted (SQLite: rowid = track_id)
    *[("INSERT INTO track (track_id, name, album_id, media_type_id, milliseconds, unit_price) "
       "VALUES (:i, :n, :a, 1, :ms, :p)", {"i": i, "n": n, "a": 9001, "ms": ms, "p": p})
      for i, n, ms, p in ((90005, "A second thought", 3000, 1.29), (90002, "Zero hour", 2000, 0.99),
                          (90003, "Middle", 1000, 0.99))],
]
# On PostgreSQL, rewriting rows of album 1 moves them to the end of the table's heap.
Q2_SHUFFLE = [("UPDATE track SET name = name WHERE track_id IN (1, 6)", {})]


async def _album_json(engine: Any, album_id: int) -> dict:
    from sqlalchemy import select

    from course.models import Album, Artist, Track

    async with engine.connect() as conn:
        album = (await conn.execute(
            select(Album.album_id, Album.title, Artist.artist_id, Artist.name)
            .join(Artist, Artist.artist_id == Album.artist_id).where(Album.album_id == album_id))).one()
        tracks = (await conn.execute(
            select(Track.track_id, Track.name, Track.milliseconds, Track.unit_price)
            .where(Track.album_id == album_id).order_by(Track.track_id))).all()
    return {"album_id": album.album_id, "title": album.title,
            "artist": {"artist_id": album.artist_id, "name": album.name},
            "tracks": [{"track_id": t.track_id, "name": t.name, "milliseconds": t.milliseconds,
                        "unit_price": _money(t.unit_price)} for t in tracks]}


def _compare_album(got: Any, expected: dict, what: str) -> None:
    if got == expected:
        return
    if not isinstance(got, dict):
        raise Wrong(f"{what} returned {type(got).__name__} JSON; expected an object like AlbumOut.")
    if set(got) != set(expected):
        raise Wrong(f"{what} returned the keys {sorted(got)}; AlbumOut has {sorted(expected)}.")
    if got.get("artist") != expected["artist"]:
        raise Wrong(f"{what}: artist is {got.get('artist')!r}; expected {expected['artist']!r}.")
    tracks, want = got.get("tracks"), expected["tracks"]
    if isinstance(tracks, list) and len(tracks) != len(want):
        raise Wrong(f"{what} listed {len(tracks)} tracks; the album has {len(want)}.")
    if isinstance(tracks, list) and sorted(map(str, tracks)) == sorted(map(str, want)):
        raise Wrong(f"{what} has the right tracks in the wrong order, "
                    f"{[t.get('track_id') if isinstance(t, dict) else t for t in tracks]}: order "
                    "them by track_id (`selectinload(Album.tracks)` follows the relationship's "
                    "order_by, which is track_id; a select() of your own needs "
                    "`.order_by(Track.track_id)`).")
    raise Wrong(f"{what} returned {str(got)[:150]}; expected {str(expected)[:150]}.")


async def _check_read_album(read_album) -> str:
    await _mountable(read_album, "read_album")
    ids = [1, 9001, 9007, *random.Random(9).sample(range(2, 348), 4)]
    for backend in ("sqlite", "postgresql"):
        await _check_read_album_on(read_album, backend, ids)
    return (f"on SQLite and PostgreSQL: {len(ids)} albums (ids with gaps, one with no tracks, "
            "tracks stored out of order) with their artist and tracks in track order, in at most "
            "3 statements each; 404 for a missing album; 422 for a path that is not an integer; "
            "every connection returned.")


async def _check_read_album_on(read_album: Any, backend: str, ids: list[int]) -> None:
    if backend == "sqlite":
        url = await _database("check-09-q2", backend, *Q2_SETUP)
    else:
        url = await _database("check_09_q2", backend, *Q2_SETUP, *Q2_SHUFFLE)
    on = "SQLite" if backend == "sqlite" else "PostgreSQL"
    async with _served(url, [("/albums/{album_id}", "GET", read_album, None)]) as (client, engine):
        for album_id in ids:
            what = f"GET /albums/{album_id} (on {on})"
            with StatementCounter(engine) as counter:
                response = await _send(client, "GET", f"/albums/{album_id}")
            _status(response, 200, what)
            _compare_album(response.json(), await _album_json(engine, album_id), what)
            if counter.count > 3:
                raise Wrong(f"{what} ran {counter.count} SQL statements for one album: load "
                            "the album with its artist and tracks in at most 3 (selectinload "
                            "runs one query per relationship), not one per row.")
        missing = 999_999
        try:
            response = await _send(client, "GET", f"/albums/{missing}")
        except _BadResponse as exc:
            if exc.returned_none:
                raise Wrong(f"GET /albums/{missing}: there is no such album, and your route "
                            "returned None, which AlbumOut cannot describe: raise "
                            "`HTTPException(status_code=404, detail=...)` instead.") from None
            raise
        _status(response, 404, f"GET /albums/{missing}", "there is no such album; raise "
                "HTTPException(status_code=404, detail=...).")
        for bad in ("abc", "1 OR 1=1", "1.5"):
            response = await _send(client, "GET", f"/albums/{bad}")
            _status(response, 422, f"GET /albums/{bad}", "declare `album_id: int`, and FastAPI "
                    "refuses what is not an integer before your code runs.")
        _leaks(engine, "the requests")


q2 = Exercise(
    "q2", "read_album", _check_read_album,
    hints=["Two things can go wrong: an album that does not exist must become a 404 before "
           "FastAPI tries to describe nothing as an AlbumOut; and AlbumOut reads the album's "
           "artist and tracks, which lazy loading cannot fetch under asyncio, so they must come "
           "with the album.",
           "Read the album by its primary key with `session.get`, asking it to load both "
           "relationships as well (one `selectinload` each); if nothing comes back, raise an "
           "HTTPException with status 404.",
           "`album = await session.get(Album, album_id, options=[selectinload(Album.artist), "
           "selectinload(Album.tracks)])`; `if album is None: raise HTTPException(status_code=404, "
           "detail=...)`; `return album` (FastAPI validates it against AlbumOut)."],
    title="GET /albums/{album_id}, with 404",
)


# --- q3: POST /artists -------------------------------------------------------------------------

async def _stored(engine: Any, name: str) -> list[tuple[int, str, list[str]]]:
    """Artists whose name equals `name` ignoring case, with their album titles."""
    from sqlalchemy import func, select

    from course.models import Album, Artist

    async with engine.connect() as conn:
        artists = (await conn.execute(select(Artist.artist_id, Artist.name)
                                      .where(func.lower(Artist.name) == name.lower())
                                      .order_by(Artist.artist_id))).all()
        out = []
        for artist_id, stored in artists:
            titles = (await conn.scalars(select(Album.title).where(Album.artist_id == artist_id))).all()
            out.append((artist_id, stored, sorted(titles)))  # Python's order: no collation
    return out


@asynccontextmanager
async def _failing_album_insert(engine: Any) -> AsyncIterator[None]:
    """While active, every INSERT into album fails: a failure halfway through the request."""
    from sqlalchemy import event

    def fail(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ALBUM"):
            raise InjectedFailure("the check made the INSERT into album fail")

    event.listen(engine.sync_engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", fail)


async def _create(client: Any, body: dict) -> Any:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    what = f"POST /artists {body}"
    try:
        return await _send(client, "POST", "/artists", json=body)
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, DBAPIError) and not isinstance(cause, IntegrityError) \
                and "'" in str(body):
            raise Wrong(f"{what}: the database could not run your SQL ({exc}), and the request "
                        "holds a quote: a name or title is data, bind it (the ORM does; with "
                        "text(), use :name parameters), never paste it into SQL.") from None
        if isinstance(exc.__cause__, IntegrityError):
            raise Wrong(f"{what}: the database refused the name (its unique index ignores case) "
                        "and your route let IntegrityError out, a 500. Catch IntegrityError "
                        "where you commit and answer 409. Looking the name up first is no "
                        "substitute: the lookup compares differently from the index, and another "
                        "request can take the name between your lookup and your insert. The "
                        "database is the judge.") from None
        raise


class _RaceProbe:
    """Makes the race between two requests for one name certain instead of likely: the first
    INSERT INTO artist waits (up to 3 s) until the other request has sent its own, so any lookup
    that either request made before inserting was made before either insert."""

    def __init__(self, engine: Any, requests: int) -> None:
        self.engine = engine.sync_engine
        self.requests = requests
        self.arrived = 0
        self.all_arrived = asyncio.Event()

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        from sqlalchemy.util import await_

        if statement.lstrip().upper().startswith("INSERT INTO ARTIST"):
            self.arrived += 1
            if self.arrived >= self.requests:
                self.all_arrived.set()
            elif self.arrived < self.requests:
                await_(self._everyone_arrived())

    async def _everyone_arrived(self) -> None:
        try:
            async with asyncio.timeout(3):
                await self.all_arrived.wait()
        except TimeoutError:
            pass  # the other request never inserts (it was refused earlier): go on

    def __enter__(self) -> _RaceProbe:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)


async def _race(client: Any, engine: Any, name: str) -> None:
    """Two requests at once for one name, in two spellings: one 201, one 409, one row."""
    bodies = [{"name": name, "albums": ["Twin A"]}, {"name": name.upper(), "albums": ["Twin B"]}]
    with _RaceProbe(engine, len(bodies)):
        outcomes = await asyncio.gather(*(_create(client, body) for body in bodies),
                                        return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Wrong) and "IntegrityError" in str(outcome):
            raise Wrong(f"two requests for the same name at once ({name!r} and "
                        f"{name.upper()!r}): the database refused the second insert and your "
                        "route let IntegrityError out, a 500. If the route looks the name up "
                        "first, both lookups found it free: a lookup before the insert cannot "
                        "prevent this; the unique index decides. Insert, commit inside `try:`, "
                        "and answer 409 on IntegrityError.")
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    codes = sorted(response.status_code for response in outcomes)
    stored = await _stored(engine, name)
    if codes != [201, 409] or len(stored) != 1:
        raise Wrong(f"two requests at once for the same name ({name!r} and {name.upper()!r}) "
                    f"were answered {codes} and left {len(stored)} artist(s) of that name; "
                    "expected one 201, one 409 and one artist: the unique index decides, catch "
                    "IntegrityError on commit and answer 409.")


async def _check_create_artist_on(create_artist: Any, backend: str, seed: int) -> int:
    rng = random.Random(seed)
    url = await _database("check-09-q3" if backend == "sqlite" else "check_09_q3", backend)
    async with _served(url, [("/artists", "POST", create_artist, 201)]) as (client, engine):
        name = f"The Check Quartet {rng.randrange(10_000, 99_999)}"
        body = {"name": name, "albums": ["Side B", "Side A", "Side B", "100% O'Brien_"]}
        response = await _create(client, body)
        _status(response, 201, f"POST /artists {body}")
        got, stored = response.json(), await _stored(engine, name)
        if not stored:
            raise Wrong(f"POST /artists {body} answered 201, but no artist {name!r} is in the "
                        "database: `await session.commit()` before you return. Nothing is kept "
                        "otherwise: the session is closed after the request, and closing rolls "
                        "back.")
        artist_id, _, titles = stored[0]
        if got != {"artist_id": artist_id, "name": name}:
            raise Wrong(f"POST /artists answered {got}; expected {{'artist_id': {artist_id}, "
                        f"'name': {name!r}}} (ArtistOut of the stored row).")
        if titles != sorted(body["albums"]):
            raise Wrong(f"POST /artists {body} stored the albums {titles}; expected every album "
                        f"of the request, a repeated title as often as it was sent, "
                        f"{sorted(body['albums'])}, with the new artist's id.")
        for hostile in HOSTILE_INPUTS:
            response = await _create(client, {"name": hostile, "albums": []})
            _status(response, 201, f"POST /artists {{'name': {hostile!r}}}")
            if [s[1] for s in await _stored(engine, hostile)] != [hostile]:
                raise Wrong(f"the name {hostile!r} was not stored exactly as sent: a name is "
                            "data, bind it (the ORM does), never paste it into SQL.")
        for taken in (name.upper(), "AC/DC", "ac/dc"):
            body = {"name": taken, "albums": ["Should Not Exist"]}
            response = await _create(client, body)
            _status(response, 409, f"POST /artists {body}", "an artist of that name exists (the "
                    "unique index ignores case): catch IntegrityError on commit and raise "
                    "HTTPException(status_code=409).")
            after = await _stored(engine, taken)
            if len(after) != 1 or "Should Not Exist" in after[0][2]:
                raise Wrong(f"after the 409 for {taken!r}, the database holds {after}: a "
                            "conflict must leave nothing behind.")
        await _race(client, engine, f"Twin Names {rng.randrange(10_000, 99_999)}")
        for bad in ({"name": ""}, {}, {"name": "Fine", "albums": [""]}, {"name": "x" * 121}):
            response = await _send(client, "POST", "/artists", json=bad)
            _status(response, 422, f"POST /artists {bad}", "declare the body as `new: ArtistIn` "
                    "and FastAPI validates it before your code runs.")
        midway = f"Half Written {rng.randrange(10_000, 99_999)}"
        body = {"name": midway, "albums": ["One", "Two", "Three"]}
        async with _failing_album_insert(engine):
            try:
                response = await _create(client, body)
            except LearnerError as exc:
                if not isinstance(exc.__cause__, InjectedFailure):
                    raise
                response = None
        if response is not None and response.status_code == 409:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, which is "
                        "no name conflict, and your route answered 409. Catch IntegrityError "
                        "only; let other errors through (a 500) so that they are seen.")
        if response is not None and response.status_code < 400:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, and your "
                        f"route still answered {response.status_code}.")
        left = await _stored(engine, midway)
        if left:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, yet the "
                        f"artist {midway!r} stayed in the database: it was committed before the "
                        "albums. Add the artist and its albums, then commit once (use "
                        "`await session.flush()` if you need the new id earlier).")
        response = await _create(client, {"name": midway})
        _status(response, 201, f"POST /artists {{'name': {midway!r}}} after the failure")
        _leaks(engine, "the requests")
    return 1


async def _check_create_artist(create_artist) -> str:
    await _mountable(create_artist, "create_artist")
    for seed, backend in enumerate(("sqlite", "postgresql")):
        await _check_create_artist_on(create_artist, backend, seed)
    return ("on SQLite and PostgreSQL: 201 with the stored row and its albums, hostile names "
            "stored as sent; 409 for taken names (any case) with nothing left behind, also when "
            "two requests raced for one name; 422 for "
            "bad bodies; a failure halfway left nothing and was not called a conflict.")


q3 = Exercise(
    "q3", "create_artist", _check_create_artist,
    hints=["Let the database decide whether a name is taken: its unique index refuses a second "
           "one when you commit, and no lookup of yours can see a request that is inserting the "
           "same name at this very moment. Add the artist with its albums, then commit once.",
           "Commit inside `try:`, in the route, before returning; catch IntegrityError only, roll "
           "back and answer 409 (HTTPException). Any other error goes through as a 500.",
           "`artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])`; "
           "`session.add(artist)`; `try: await session.commit()` / `except IntegrityError: await "
           "session.rollback(); raise HTTPException(status_code=409, detail=...) from None`; "
           "`return artist`."],
    limit=30.0,
    title="POST /artists: 201, 409 and nothing left behind",
)


# --- q4: GET /tracks?q=&limit=&offset= ---------------------------------------------------------

Q4_SETUP = [  # gaps in the ids; PostgreSQL wants the rows that point at them gone first
    ("DELETE FROM invoice_line WHERE track_id IN (3, 4, 10, 11, 12, 40)", {}),
    ("DELETE FROM playlist_track WHERE track_id IN (3, 4, 10, 11, 12, 40)", {}),
    ("DELETE FROM track WHERE track_id IN (3, 4, 10, 11, 12, 40)", {}),
    *[("INSERT INTO track (track_id, name, album_id, media_type_id, milliseconds, unit_price) "
       "VALUES (:i, :n, NULL, 1, 1000, :p)", {"i": i, "n": n, "p": 1.99})
      for i, n in ((99_999, "A loose track, 100% single_"), (99_998, "Back\\slash, 50\\% off"))],
]
# Only ASCII letters: how "ignoring case" treats Ü differs between databases (SQLite folds
# A-Z only), so the statement promises nothing beyond ASCII and the check asks nothing more.
# The backslash is LIKE's escape character on PostgreSQL: searched for, it must find only the
# names that hold one. An empty search text is contained in every name.
SEARCHES = ["love", "LOVE", "rOcK", *HOSTILE_INPUTS, "100%", "single_", "\\", "\\%", ""]
# On PostgreSQL, rewriting some early rows moves them to the end of the table's heap: a query
# without ORDER BY then returns them last (SQLite keeps rowid order, which is track_id here).
Q4_SHUFFLE = [("UPDATE track SET name = name WHERE track_id IN (1, 2, 5, 7, 13, 20, 21)", {})]


async def _tracks_json(engine: Any, q: str | None = None) -> list[dict]:
    from sqlalchemy import select

    from course.models import Album, Artist, Track

    stmt = (select(Track.track_id, Track.name, Track.unit_price, Album.album_id, Album.title,
                   Artist.artist_id, Artist.name.label("artist_name"))
            .outerjoin(Album, Album.album_id == Track.album_id)
            .outerjoin(Artist, Artist.artist_id == Album.artist_id)
            .order_by(Track.track_id))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [{"track_id": r.track_id, "name": r.name, "unit_price": _money(r.unit_price),
             "album": None if r.album_id is None else
             {"album_id": r.album_id, "title": r.title,
              "artist": {"artist_id": r.artist_id, "name": r.artist_name}}} for r in rows]


def _ids(items: Any) -> list[Any]:
    return [item.get("track_id") if isinstance(item, dict) else item for item in items]


async def _page(client: Any, engine: Any, **params: Any) -> tuple[list[dict], int]:
    import re

    what = "GET /tracks" + ("?" if params else "") + "&".join(f"{k}={v}" for k, v in params.items())
    with StatementCounter(engine) as counter:
        response = await _send(client, "GET", "/tracks", params=params)
    _status(response, 200, what)
    got = response.json()
    if not isinstance(got, list):
        raise Wrong(f"{what} returned {type(got).__name__} JSON; expected a list of TrackRow.")
    paged = [s for s in counter.statements if re.search(r"\b(LIMIT|OFFSET)\b", s, re.IGNORECASE)]
    if paged and not any(re.search(r"\bORDER\s+BY\b", s, re.IGNORECASE) for s in paged):
        raise Wrong(f"{what}: your query takes a page (LIMIT/OFFSET) with no ORDER BY. Without "
                    "it a database returns rows in whatever order it finds them (PostgreSQL "
                    "returns a row it has rewritten last), so pages can repeat or skip rows: "
                    "`.order_by(Track.track_id)`.")
    return got, counter.count


async def _check_list_tracks(list_tracks) -> str:
    await _mountable(list_tracks, "list_tracks")
    many = 0
    for backend in ("sqlite", "postgresql"):
        many = await _check_list_tracks_on(list_tracks, backend)
    return ("on SQLite and PostgreSQL: pages of every size over ids with gaps, in order, with "
            f"album and artist, in at most 3 statements (60 tracks: {many}); 422 for a bad limit "
            f"or offset; {len(SEARCHES)} searches ignoring case (quotes, %, _, a backslash and an "
            "empty text among them), each treated as plain text.")


async def _check_list_tracks_on(list_tracks: Any, backend: str) -> int:
    if backend == "sqlite":
        url = await _database("check-09-q4", backend, *Q4_SETUP)
    else:
        url = await _database("check_09_q4", backend, *Q4_SETUP, *Q4_SHUFFLE)
    async with _served(url, [("/tracks", "GET", list_tracks, None)]) as (client, engine):
        everything = await _tracks_json(engine)
        got, _ = await _page(client, engine)
        if got != everything[:20]:
            if sorted(_ids(got), key=str) == _ids(everything[:20]):
                raise Wrong(f"GET /tracks (no parameters) returned the first 20 tracks out of "
                            f"order, {_ids(got)[:8]}...: order them by track_id.")
            if _ids(got) == _ids(everything[:20]):
                raise Wrong(f"GET /tracks: the right tracks, but the first one reads {got[0]}; "
                            f"expected {everything[0]} (TrackRow, with its album and artist).")
            raise Wrong(f"GET /tracks (no parameters) returned {len(got)} tracks starting "
                        f"{_ids(got)[:5]}; expected the first 20 by track_id, "
                        f"{_ids(everything[:5])}... (limit defaults to 20, offset to 0).")
        for limit, offset in ((7, 0), (7, 7), (7, 14), (5, 31), (30, len(everything) - 4),
                              (30, len(everything))):
            what = f"GET /tracks?limit={limit}&offset={offset}"
            got, count = await _page(client, engine, limit=limit, offset=offset)
            want = everything[offset:offset + limit]
            if _ids(got) != _ids(want):
                hint = ""
                if _ids(got) == _ids(everything[offset + 1:offset + 1 + limit]) or \
                        _ids(got) == _ids(everything[max(offset - 1, 0):max(offset - 1, 0) + limit]):
                    hint = " (one off: OFFSET skips exactly `offset` rows)"
                elif offset and _ids(got) == _ids([t for t in everything if t["track_id"] > offset][:limit]):
                    hint = (" (track_id > offset works only while ids have no gaps; these do: "
                            "use .offset(offset))")
                raise Wrong(f"{what} returned track ids {_ids(got)[:8]}; expected "
                            f"{_ids(want)[:8]}{hint}.")
            if got != want:
                raise Wrong(f"{what}: track {_ids(got)[0]} reads {got[0]}; expected {want[0]}.")
        small, few = await _page(client, engine, limit=3)
        large, many = await _page(client, engine, limit=60)
        if many > 3:
            raise Wrong(f"a page of 60 tracks ran {many} SQL statements (a page of 3 ran {few}): "
                        "one query per track or album is the N+1 problem. Load the albums and "
                        "artists with the page: `.options(selectinload(Track.album)"
                        ".selectinload(Album.artist))`.")
        for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}):
            what = "GET /tracks?" + "&".join(f"{k}={v}" for k, v in params.items())
            response = await _send(client, "GET", "/tracks", params=params)
            _status(response, 422, what, "declare `limit: Annotated[int, Query(ge=1, le=100)] = "
                    "20` and `offset: Annotated[int, Query(ge=0)] = 0`.")
        for q in SEARCHES:
            what = f"GET /tracks?q={q}&limit=100"
            want = (await _tracks_json(engine, q))[:100]
            if q == "":  # an empty search: every track, or a 422 from a min_length on q
                response = await _send(client, "GET", "/tracks", params={"q": q, "limit": 100})
                if response.status_code == 422:
                    continue
            try:
                got, count = await _page(client, engine, q=q, limit=100)
            except LearnerError as exc:
                if "'" in q:
                    raise Wrong(f"{what}: the quote in {q!r} broke your query ({exc}): the query "
                                "string became SQL. Filter with `Track.name.icontains(q, "
                                "autoescape=True)`, which binds q as data.") from None
                raise
            if got == want:
                continue
            if "\\" in q:
                raise Wrong(f"{what} returned track ids {_ids(got)[:8]}; expected {_ids(want)[:8]}, "
                            "the names that hold a backslash. Most likely the backslash reached LIKE "
                            "unescaped: it is LIKE's escape character on PostgreSQL (and wherever "
                            "`escape='\\'` is given). `Track.name.icontains(q, autoescape=True)` "
                            "escapes it along with % and _.")
            if len(got) > len(want) and q in ("%", "_", "100%", "single_"):
                raise Wrong(f"{what} returned {len(got)} tracks; only {len(want)} names contain "
                            f"{q!r}: % and _ are LIKE wildcards. `Track.name.icontains(q, "
                            "autoescape=True)` escapes them.")
            names = [item.get("name", "") for item in got if isinstance(item, dict)]
            if len(got) < len(want) and all(q in name for name in names):
                raise Wrong(f"{what} returned {len(got)} tracks; {len(want)} names contain "
                            f"{q!r} in any case on {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}"
                            ": `icontains`, not `contains` (SQLite's LIKE ignores the case of "
                            "ASCII letters, PostgreSQL's does not).")
            if len(got) > len(want) and "'" in q:
                raise Wrong(f"{what} returned {len(got)} tracks instead of {len(want)}: the query "
                            "string became SQL. Filter with `Track.name.icontains(q, "
                            "autoescape=True)`, which binds q as data.")
            raise Wrong(f"{what} returned track ids {_ids(got)[:8]}; expected {_ids(want)[:8]}.")
        _leaks(engine, "the requests")
    return many


q4 = Exercise(
    "q4", "list_tracks", _check_list_tracks,
    hints=["The signature already validates limit and offset. One select(Track) does the rest: "
           "an order (a page without one is whatever the database finds first), the page, the "
           "optional search, and the albums and artists that TrackRow reads, loaded with the "
           "page rather than one query per track.",
           "Order by track_id, then `.limit()` and `.offset()`; search with `icontains`, which "
           "ignores case, and its `autoescape=True`, which makes % and _ plain characters; load "
           "`Track.album` and then `Album.artist` with a chained `selectinload`.",
           "`stmt = select(Track).options(selectinload(Track.album).selectinload(Album.artist))"
           ".order_by(Track.track_id).limit(limit).offset(offset)`; `if q is not None: stmt = "
           "stmt.where(Track.name.icontains(q, autoescape=True))`; `return (await "
           "session.scalars(stmt)).all()`."],
    limit=20.0,
    title="GET /tracks: a page, a search, no N+1",
)


# --- q5: a blocking client inside an async route ----------------------------------------------

class _LyricsProbe:
    """Stands in for the workbook's fetch_lyrics: records the thread of every call, and in the
    concurrent phase holds each call until a second one runs beside it (or 5 s pass)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.calls: list[str] = []
        self.on_loop = 0
        self.now = 0
        self.peak = 0
        self.wait = False
        self.stalled = False
        self._cond = threading.Condition()

    def __call__(self, name: str) -> str:
        with self._cond:
            self.calls.append(name)
            if threading.get_ident() == self.loop_thread:
                self.on_loop += 1  # the loop thread is stuck here: answer at once, the call is seen
                return f"lyrics of {name}"
            self.now += 1
            self.peak = max(self.peak, self.now)
            self._cond.notify_all()
            if self.wait and not self.stalled and not self._cond.wait_for(lambda: self.peak >= 2, 5.0):
                self.stalled = True  # wait once only: a blocked loop is then seen without delay
            self.now -= 1
        return f"lyrics of {name}"


def _blocked_loop(error: BaseException | None = None) -> Wrong:
    passed_a_value = ""
    if isinstance(error, TypeError) and "callable" in str(error):
        passed_a_value = (f" Then your route raised TypeError ({str(error).splitlines()[0]}): "
                          "`to_thread(fetch_lyrics(name))` calls fetch_lyrics right away, on the "
                          "loop, and hands to_thread its result instead of the function.")
    return Wrong("fetch_lyrics ran on the event loop's own thread: while it waits, every other "
                 f"request of the app waits too.{passed_a_value} Run it in a worker thread, "
                 "passing the function and its argument separately: "
                 "`lyrics = await asyncio.to_thread(fetch_lyrics, track.name)`.")


async def _check_track_lyrics(track_lyrics) -> str:
    await _mountable(track_lyrics, "track_lyrics")
    namespace = getattr(track_lyrics, "__globals__", None)
    if namespace is None:
        raise Wrong("pass your route function `track_lyrics` itself.")
    probe = _LyricsProbe(threading.get_ident())
    missing = object()
    original = namespace.get("fetch_lyrics", missing)
    namespace["fetch_lyrics"] = probe
    url = await _database("check-09-q5")
    try:
        async with _served(url, [("/tracks/{track_id}/lyrics", "GET", track_lyrics, None)]) as (client, engine):
            from course.models import Track

            async with engine.connect() as conn:
                from sqlalchemy import select
                names = dict((await conn.execute(select(Track.track_id, Track.name))).all())

            def expected(track_id: int) -> dict:
                return {"track_id": track_id, "name": names[track_id],
                        "lyrics": f"lyrics of {names[track_id]}"}

            try:
                response = await _send(client, "GET", "/tracks/1/lyrics")
            except LearnerError as exc:
                if probe.on_loop:
                    raise _blocked_loop(exc.__cause__) from None
                raise
            if probe.on_loop:
                raise _blocked_loop()
            _status(response, 200, "GET /tracks/1/lyrics")
            if not probe.calls:
                raise Wrong("GET /tracks/1/lyrics never called fetch_lyrics: the lyrics must come "
                            "from it (the check stands in for it, to watch which thread calls it).")
            if response.json() != expected(1):
                raise Wrong(f"GET /tracks/1/lyrics returned {response.json()}; expected "
                            f"{expected(1)}, with the lyrics fetch_lyrics returned.")
            before = len(probe.calls)
            response = await _send(client, "GET", "/tracks/999999/lyrics")
            _status(response, 404, "GET /tracks/999999/lyrics", "there is no such track: raise "
                    "HTTPException(status_code=404) before calling fetch_lyrics.")
            if len(probe.calls) != before:
                raise Wrong("GET /tracks/999999/lyrics called fetch_lyrics for a track that does "
                            "not exist: answer 404 first.")
            ids = random.Random(5).sample(sorted(names), 3)
            probe.wait = True
            responses = await asyncio.gather(*(_send(client, "GET", f"/tracks/{i}/lyrics") for i in ids))
            if probe.on_loop:
                raise _blocked_loop()
            for track_id, response in zip(ids, responses, strict=True):
                _status(response, 200, f"GET /tracks/{track_id}/lyrics")
                if response.json() != expected(track_id):
                    raise Wrong(f"GET /tracks/{track_id}/lyrics returned {response.json()}; "
                                f"expected {expected(track_id)}.")
            if probe.peak < 2:
                raise Wrong(f"{len(ids)} requests at once never had two fetch_lyrics calls "
                            "running together: something made them wait their turn (likely a "
                            "lock, an executor with one thread, `ThreadPoolExecutor(max_workers="
                            "1)`, or `.result()` on a future, which blocks the loop). Await "
                            "`asyncio.to_thread(fetch_lyrics, name)` and nothing else.")
            _leaks(engine, "the requests")
    finally:
        if original is missing:
            namespace.pop("fetch_lyrics", None)
        else:
            namespace["fetch_lyrics"] = original
    return (f"fetch_lyrics ran in worker threads, never on the loop's thread; {len(ids)} requests "
            "at once overlapped; 404 without calling it for a missing track.")


q5 = Exercise(
    "q5", "track_lyrics", _check_track_lyrics,
    hints=["fetch_lyrics blocks: called directly in an `async def` route, it holds the event "
           "loop, and with it every other request. It has to run on another thread while the "
           "route awaits it.",
           "Read the track first (404 if there is none, before calling the vendor); then hand "
           "fetch_lyrics to `asyncio.to_thread`, giving it the function and its argument "
           "separately: do not call it yourself.",
           "`track = await session.get(Track, track_id)`; `if track is None: raise "
           "HTTPException(status_code=404, detail=...)`; `lyrics = await "
           "asyncio.to_thread(fetch_lyrics, track.name)`; `return Lyrics(track_id=track.track_id, "
           "name=track.name, lyrics=lyrics)`."],
    limit=20.0,
    title="A blocking client inside an async route",
)

