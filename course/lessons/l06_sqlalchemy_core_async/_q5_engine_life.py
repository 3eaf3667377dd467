"""q5: an engine's whole life (created from a URL, disposed on every path)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import Pool

from course.checking.backends import backend_name, drop_url
from course.checking.checks import Exercise, LearnerError, Wrong, must_raise
from course.checking.events import Hook, listen_all, remove_all
from course.db.engines import BACKENDS, fresh_engine_url
from course.probes import HOSTILE_INPUTS

from ._common import LIMIT, SYNC_DRIVER, run


class _PoolWatch:
    """Every DBAPI connection any pool opens, checks out, checks in and closes meanwhile, and
    every engine that connects and every engine whose dispose() is called."""

    def __init__(self) -> None:
        self.opened = self.closed = self.out = self.back = 0
        self.sync = False
        self._open: dict[int, Any] = {}  # the DBAPI connections not closed yet
        self.engines: dict[int, Any] = {}  # the engines that connected
        self.disposed: set[int] = set()

    def _engine_connect(self, conn) -> None:
        self.engines[id(conn.engine)] = conn.engine

    def _engine_disposed(self, engine) -> None:
        self.disposed.add(id(engine))

    def undisposed(self) -> int:
        """Engines that connected and whose dispose() was never called."""
        return len(self.engines.keys() - self.disposed)

    def _connect(self, dbapi_connection, record) -> None:
        self.opened += 1
        self._open[id(dbapi_connection)] = dbapi_connection
        if "AsyncAdapt" not in type(dbapi_connection).__name__:
            self.sync = True

    def _close(self, dbapi_connection, record) -> None:
        self.closed += 1
        self._open.pop(id(dbapi_connection), None)

    async def release(self) -> None:
        """End the connections an engine the code never disposed still holds, while the loop
        runs: otherwise aiosqlite's thread reports "Event loop is closed" when it goes later."""
        for connection in self._open.values():
            with contextlib.suppress(Exception):
                connection.terminate()
            thread = getattr(getattr(connection, "_connection", None), "_thread", None)
            if thread is not None and thread.is_alive():
                await asyncio.to_thread(thread.join, 5)
        self._open.clear()
        await asyncio.sleep(0)  # the thread's last callback runs on this loop

    def _checkout(self, *args: Any) -> None:
        self.out += 1

    def _checkin(self, *args: Any) -> None:
        self.back += 1

    def _hooks(self) -> list[Hook]:
        pool = [(Pool, name, getattr(self, f"_{name}")) for name in ("connect", "close", "checkout", "checkin")]
        return pool + [(Engine, name, getattr(self, f"_{name}")) for name in ("engine_connect", "engine_disposed")]

    def __enter__(self) -> _PoolWatch:
        listen_all(self._hooks())
        return self

    def __exit__(self, *exc: object) -> None:
        remove_all(self._hooks())


NO_ALBUMS = "Milton Nascimento & Bebeto"  # in Chinook's artist table, with no album
ARTISTS = [("Iron Maiden", 21), ("AC/DC", 2), ("Guns N' Roses", 3), ("Nobody at all", 0),
           (NO_ALBUMS, 0), ("", 0), (HOSTILE_INPUTS[0], 0)]


async def _check_count_albums(count_albums) -> str:
    for backend in BACKENDS:
        url = await fresh_engine_url("check_06_q5", backend)
        broken = await fresh_engine_url("check_06_q5_broken", backend)
        try:
            engine = create_async_engine(broken)
            async with engine.begin() as conn:  # the broken copy has no album table
                await conn.exec_driver_sql("DROP TABLE album" + (" CASCADE" if backend == "postgresql" else ""))
            await engine.dispose()
            await _lifecycle_cases(url, broken, count_albums, backend)
        finally:
            await drop_url(url)
            await drop_url(broken)
    return ("dispose() was called on the engine each call used, on success and on error, and "
            "no connection was left open.")


def _closed_all(watch: _PoolWatch, what: str) -> None:
    if watch.sync:
        raise Wrong(SYNC_DRIVER)
    if watch.out > watch.back:
        raise Wrong(f"{what}: a connection was never given back to the pool (connect() without "
                    "close()), so dispose() could not close it. Use `async with engine.connect() "
                    "as conn:`.")
    if watch.opened > watch.closed:
        raise Wrong(f"{what}: {watch.opened - watch.closed} connection(s) stayed open in the "
                    "engine's pool. `await engine.dispose()` closes them; put it in a `finally:` "
                    "so it runs on every path.")
    if watch.undisposed():
        raise Wrong(f"{what}: the engine it created was never disposed of (no call to "
                    "dispose() was seen). Every connection it opened was closed, as a NullPool does "
                    "on its own, but the function is to dispose of its engine: `await engine.dispose()` in a `finally:`, so it runs on every path.")


async def _lifecycle_cases(url: URL, broken: URL, count_albums, backend: str) -> None:
    for artist, albums in ARTISTS:
        with _PoolWatch() as watch:
            try:
                got = await run(count_albums, url, artist)
            except LearnerError as exc:
                if "***" in str(exc) or "password" in str(exc).lower():
                    raise Wrong("str(url) hides the password as ***: pass the URL object itself "
                                "to create_async_engine().") from None
                if "'" in artist:
                    raise Wrong(f"the name {artist!r} broke your query ({exc}): it became part of "
                                "the SQL. Bind it: `artist.c.name == name` in select(), or `:name` "
                                "in text().") from None
                raise
            finally:
                await watch.release()
            await asyncio.sleep(0)
        if not watch.opened:
            raise Wrong("count_albums never opened a connection of its own: create an engine from "
                        "the url you are given, with create_async_engine(url).")
        _closed_all(watch, f"after count_albums(url, {artist!r}) returned")
        if got != albums:
            why = (" This artist exists but has no album: likely an outer join from artist to album "
                   "(one row of NULLs) counted with count(*). Count `album.c.album_id`, or select "
                   "from album joined to artist." if artist == NO_ALBUMS and got == 1 else "")
            raise Wrong(f"count_albums(url, {artist!r}) returned {got!r} on {backend_name(backend)}; "
                        f"expected {albums}.{why}")
    with _PoolWatch() as watch:
        await must_raise(DBAPIError, run(count_albums, broken, "AC/DC"),
                         lambda got: f"the check gave a database without an album table, and "
                                     f"count_albums returned {got!r}: let the error reach the caller.")
        await asyncio.sleep(0)
    await watch.release()
    _closed_all(watch, "when the query failed (a database without an album table)")


q5 = Exercise(
    "q5", "count_albums", _check_count_albums,
    hints=["The function owns its engine: it makes one from the URL it is given (which already "
           "names the async driver), and disposes of it however it ends, on success and on error.",
           "`engine = create_async_engine(url)`, then `try:` … `async with engine.connect() as "
           "conn:` … `finally: await engine.dispose()`: dispose() closes the pool's connections.",
           "The query: `select(func.count()).select_from(album).join(artist, artist.c.artist_id == "
           "album.c.artist_id).where(artist.c.name == name)`, then `.scalar_one()`."],
    limit=LIMIT, title="An engine's whole life",
)
