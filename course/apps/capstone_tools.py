"""Lesson 11's tools, for its notebook, its workbook and the conftest.py its q3 check writes:
the SQLite SAVEPOINT recipe, the lesson-09 store with one planted bug (what q3's check runs),
that conftest's text (CONFTEST) and the capstone's starting database (prepare_capstone)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import HTTPException, Query

from course.apps.music_store import AlbumOut, ArtistIn, ArtistOut, SessionDep, TrackRow
from course.db.engines import Backend, fresh_engine_url
from course.deadline import not_counted


def take_over_begin(engine: Any) -> Any:
    """Make SAVEPOINTs real on SQLite (the lesson's recipe): SQLAlchemy, not the sqlite3 module,
    emits BEGIN. Without it a "rolled back" test keeps what its session committed."""
    from sqlalchemy import event

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_begin(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def variant_routes() -> dict[str, tuple[str, str, Any, str]]:
    """The planted bugs: (method, path, route, what a test must notice), by name.

    Each route is the lesson-09 route with one mistake, and answers like it otherwise."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import selectinload

    from course.apps.music_store import read_album
    from course.models import Album, Artist, Track

    async def create_artist_no_rollback(new: ArtistIn, session: SessionDep) -> ArtistOut:
        artist = Artist(name=new.name)
        artist.albums = [Album(title=title) for title in new.albums]
        session.add(artist)
        try:
            await session.commit()
        except IntegrityError:
            # BUG: no `await session.rollback()` before using the session again
            taken = await session.scalar(select(Artist.name).where(Artist.name.ilike(new.name)))
            raise HTTPException(status_code=409, detail=f"an artist called {taken!r} exists") from None
        return artist

    async def list_tracks_off_by_one(session: SessionDep, q: str | None = None,
                                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                                     offset: Annotated[int, Query(ge=0)] = 0) -> list[TrackRow]:
        stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
                .order_by(Track.track_id).limit(limit)
                .offset(max(offset - 1, 0)))  # BUG: every page after the first starts one early
        if q is not None:
            stmt = stmt.where(Track.name.icontains(q, autoescape=True))
        return list((await session.scalars(stmt)).all())

    async def read_artist_200(artist_id: int, session: SessionDep) -> ArtistOut | None:
        return await session.get(Artist, artist_id)  # BUG: a missing artist answers 200 null

    async def list_tracks_n_plus_one(session: SessionDep, q: str | None = None,
                                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                                     offset: Annotated[int, Query(ge=0)] = 0) -> list[TrackRow]:
        stmt = select(Track).order_by(Track.track_id).limit(limit).offset(offset)
        if q is not None:
            stmt = stmt.where(Track.name.icontains(q, autoescape=True))
        tracks = list((await session.scalars(stmt)).all())
        for track in tracks:  # BUG: one or two more queries per track
            album = await track.awaitable_attrs.album
            if album is not None:
                await album.awaitable_attrs.artist
        return tracks

    async def read_album_blocking(album_id: int, session: SessionDep) -> AlbumOut:
        time.sleep(0.01)  # BUG: a synchronous call on the event loop's thread  # noqa: ASYNC251
        return await read_album(album_id, session)

    return {
        "missing_rollback": ("POST", "/artists", create_artist_no_rollback,
                             "the missing rollback in POST /artists (a repeated name should "
                             "answer 409)"),
        "off_by_one_page": ("GET", "/tracks", list_tracks_off_by_one,
                            "the off-by-one page in GET /tracks (the second page should start "
                            "where the first ended)"),
        "ok_instead_of_404": ("GET", "/artists/{artist_id}", read_artist_200,
                              "the 200 for a missing artist in GET /artists/{artist_id} (it "
                              "should be 404)"),
        "n_plus_one": ("GET", "/tracks", list_tracks_n_plus_one,
                       "the N+1 queries in GET /tracks (count the statements of a page)"),
        "blocking": ("GET", "/albums/{album_id}", read_album_blocking,
                     "the blocking call in GET /albums/{album_id} (look at blocking_calls)"),
    }


VARIANTS = ("missing_rollback", "off_by_one_page", "ok_instead_of_404", "n_plus_one", "blocking")


def store_variant(name: str) -> Any:
    """create_app for the lesson-09 store, or for a copy of it with the planted bug `name`."""
    from fastapi.routing import APIRoute

    from course.apps.music_store import create_app

    if name == "reference":
        return create_app
    method, path, route, _ = variant_routes()[name]

    def create_variant(url: Any, **options: Any) -> Any:
        app = create_app(url, **options)
        app.router.routes[:] = [r for r in app.router.routes
                                if not (isinstance(r, APIRoute) and r.path == path
                                        and method in r.methods)]
        app.add_api_route(path, route, methods=[method],
                          status_code=201 if method == "POST" else None)
        return app

    return create_variant


CONFTEST = '''\
"""Fixtures for the music-store tests (lesson 11). The q3 check writes this file beside yours."""

import os
import shutil
import threading
import time

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from course.apps.capstone_tools import store_variant

STORES = os.environ.get("STORE_VARIANTS", "reference").split(",")


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=STORES)
def create_app(request):
    """The lesson-09 store's create_app, or a copy with a planted bug (what q3's check runs)."""
    return store_variant(request.param)


@pytest.fixture
async def client(create_app, tmp_path):
    """The app on its own fresh copy of Chinook, lifespan run, called in-process."""
    database = tmp_path / "chinook.db"
    shutil.copyfile(os.environ["STORE_TEMPLATE"], database)
    app = create_app(f"sqlite+aiosqlite:///{database}")
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://store") as client:
            yield client


@pytest.fixture
def statements(client):
    """Every SQL statement any engine runs during the test once the app has started, in order
    (it asks for `client` first, so the app's own start-up SQL is never counted, whatever the
    order of a test's parameters)."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture
def blocking_calls(monkeypatch):
    """time.sleep calls made on the event loop's own thread during the test."""
    loop_thread = threading.get_ident()  # anyio runs the tests' loop on this thread
    calls = []
    real_sleep = time.sleep

    def watched_sleep(seconds):
        if threading.get_ident() == loop_thread:
            calls.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", watched_sleep)
    return calls
'''


async def prepare_capstone(name: str, backend: Backend = "sqlite") -> Any:
    """A fresh Chinook with the store's tables (course.apps.store_orders) and its stock."""
    from course.apps.store_orders import prepare_store

    url = await fresh_engine_url(name, backend)
    async with not_counted():  # set-up: never the learner's time
        await prepare_store(url)
    return url
