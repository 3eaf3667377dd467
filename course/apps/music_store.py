"""The music-store API of lesson 09, as one reference app for lessons 10 and 11.

Lesson 09 builds this app cell by cell; here it is in one place, so that later lessons (and the
checks) can start it without repeating it:

    from course.apps.music_store import create_app
    app = create_app(await course.fresh_engine_url("10-performance"))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://store") as client:
            (await client.get("/albums/1")).json()

Routes: GET /artists/{id}, POST /artists (201; 409 on a name already taken, ignoring case),
GET /albums/{id} (with its artist and tracks), GET /tracks?q=&limit=&offset= (a page, with each
track's album and artist) and POST /albums (201).

The 409 needs a unique index on lower(artist.name), which Chinook does not have: `create_app`
adds it at start-up when `unique_names=True` (the default). In a real project a migration
(Alembic) would create it, once; here every course database is a fresh copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import selectinload

from course.models import Album, Artist, Track

UNIQUE_NAMES = "CREATE UNIQUE INDEX IF NOT EXISTS artist_name_key ON artist (lower(name))"


# --- schemas: what goes in and what comes out --------------------------------------------------

class ArtistIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    albums: list[Annotated[str, Field(min_length=1, max_length=160)]] = []


class ArtistOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    artist_id: int
    name: str


class TrackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    track_id: int
    name: str
    milliseconds: int
    unit_price: Decimal


class AlbumOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    album_id: int
    title: str
    artist: ArtistOut
    tracks: list[TrackOut]


class AlbumBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    album_id: int
    title: str
    artist: ArtistOut


class TrackRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    track_id: int
    name: str
    unit_price: Decimal
    album: AlbumBrief | None


class AlbumIn(BaseModel):
    title: str = Field(min_length=1, max_length=160)
    artist_id: int


# --- the session dependency ---------------------------------------------------------------------

async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, from the sessionmaker the lifespan put in the request's state."""
    async with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


# --- routes -------------------------------------------------------------------------------------

async def read_artist(artist_id: int, session: SessionDep) -> ArtistOut:
    artist = await session.get(Artist, artist_id)
    if artist is None:
        raise HTTPException(status_code=404, detail=f"artist {artist_id} not found")
    return artist  # type: ignore[return-value]  # FastAPI makes the ArtistOut (from_attributes)


async def create_artist(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name)
    artist.albums = [Album(title=title) for title in new.albums]
    session.add(artist)
    try:
        await session.commit()  # before the response: a failed commit must not answer 201
    except IntegrityError:
        await session.rollback()
        raise HTTPException(status_code=409, detail=f"an artist called {new.name!r} exists") from None
    return artist  # type: ignore[return-value]  # FastAPI makes the ArtistOut (from_attributes)


async def read_album(album_id: int, session: SessionDep) -> AlbumOut:
    album = await session.get(Album, album_id,
                              options=[selectinload(Album.artist), selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=404, detail=f"album {album_id} not found")
    return album  # type: ignore[return-value]  # FastAPI makes the AlbumOut (from_attributes)


async def create_album(new: AlbumIn, session: SessionDep) -> AlbumOut:
    if await session.get(Artist, new.artist_id) is None:
        raise HTTPException(status_code=422, detail=f"artist {new.artist_id} does not exist")
    album = Album(title=new.title, artist_id=new.artist_id, tracks=[])
    session.add(album)
    await session.commit()
    await session.refresh(album, ["artist"])
    return album  # type: ignore[return-value]  # FastAPI makes the AlbumOut (from_attributes)


async def list_tracks(session: SessionDep, q: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20,
                      offset: Annotated[int, Query(ge=0)] = 0) -> list[TrackRow]:
    stmt = (select(Track)
            .options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())  # type: ignore[arg-type]  # FastAPI makes TrackRows



def create_app(url: str | URL, *, unique_names: bool = True, **engine_options: Any) -> FastAPI:
    """The music store over the database at `url`; the lifespan owns the engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = create_async_engine(url, **engine_options)
        if unique_names:
            async with engine.begin() as conn:
                await conn.execute(text(UNIQUE_NAMES))
        try:
            yield {"engine": engine, "sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        finally:
            await engine.dispose()

    app = FastAPI(title="Music store", lifespan=lifespan)
    app.add_api_route("/artists/{artist_id}", read_artist, methods=["GET"])
    app.add_api_route("/artists", create_artist, methods=["POST"], status_code=201)
    app.add_api_route("/albums/{album_id}", read_album, methods=["GET"])
    app.add_api_route("/albums", create_album, methods=["POST"], status_code=201)
    app.add_api_route("/tracks", list_tracks, methods=["GET"])
    return app
