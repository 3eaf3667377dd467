"""Wrong answers to exercises/09-fastapi-in-process-workbook.ipynb.

The routes use the reference schemas and session dependency of course.apps.music_store, which are
the workbook's. q5's answers call `fetch_lyrics` from this module's globals, as the workbook's
routes call the workbook's: the check swaps it for its own stand-in.
"""

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import joinedload, selectinload, sessionmaker
from starlette.concurrency import run_in_threadpool

from course.apps.music_store import AlbumOut, ArtistIn, ArtistOut, SessionDep, TrackOut, TrackRow
from course.models import Album, Artist, Track
from tests.corpus import correct, wrong

# --- q1: create_app ----------------------------------------------------------------------------

_IMPORT_TIME_ENGINE: list[Any] = []


@wrong("q1", expect="on the url it is given")
def create_app_module_engine(url):
    # the engine made once, "at import time", for whichever database came first
    if not _IMPORT_TIME_ENGINE:
        _IMPORT_TIME_ENGINE.append(create_async_engine(url))
    engine = _IMPORT_TIME_ENGINE[0]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="made once (when create_app ran")
def create_app_engine_outside_lifespan(url):
    engine = create_async_engine(url)  # made when create_app runs, shared by every start-up

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="at the first start-up and then kept")
def create_app_engine_kept_from_first_start(url):
    box: dict[str, Any] = {}  # made inside the lifespan, but only the first time it runs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        if "engine" not in box:
            box["engine"] = create_async_engine(url)
        try:
            yield {"sessionmaker": async_sessionmaker(box["engine"], expire_on_commit=False)}
        finally:
            await box["engine"].dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="await engine.dispose()")
def create_app_never_disposes(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        engine = create_async_engine(url)
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="never awaited")
def create_app_dispose_not_awaited(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        engine = create_async_engine(url)
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="expire_on_commit=False")
def create_app_expiring_sessions(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        engine = create_async_engine(url)
        yield {"sessionmaker": async_sessionmaker(engine)}
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="app.state")
def create_app_on_app_state(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(url)
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        yield
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="on_event")
def create_app_on_event(url):
    app = FastAPI()
    engines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)

        @app.on_event("startup")
        async def start() -> None:
            engines.append(create_async_engine(url))
            app.state.sessionmaker = async_sessionmaker(engines[-1], expire_on_commit=False)

        @app.on_event("shutdown")
        async def stop() -> None:
            await engines[-1].dispose()

    return app


@wrong("q1", expect="must yield a dict")
def create_app_yields_the_sessionmaker(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        engine = create_async_engine(url)
        yield async_sessionmaker(engine, expire_on_commit=False)
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


@wrong("q1", expect="request.state has no `sessionmaker`")
def create_app_yields_the_engine(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        engine = create_async_engine(url)
        yield {"engine": engine}
        await engine.dispose()

    return FastAPI(lifespan=lifespan)


# --- q2: read_album -----------------------------------------------------------------------------


@wrong("q2", expect="MissingGreenlet")
async def read_album_lazy(album_id: int, session: SessionDep) -> AlbumOut:
    album = await session.get(Album, album_id)
    if album is None:
        raise HTTPException(status_code=404)
    return album


@wrong("q2", expect="raise `HTTPException(status_code=404")
async def read_album_returns_none(album_id: int, session: SessionDep) -> AlbumOut:
    return await session.get(Album, album_id, options=[selectinload(Album.artist),
                                                       selectinload(Album.tracks)])


@wrong("q2", expect="expected 404")
async def read_album_none_allowed(album_id: int, session: SessionDep) -> AlbumOut | None:
    return await session.get(Album, album_id, options=[selectinload(Album.artist),
                                                       selectinload(Album.tracks)])


@wrong("q2", expect="expected 404")
async def read_album_400(album_id: int, session: SessionDep) -> AlbumOut:
    album = await session.get(Album, album_id, options=[selectinload(Album.artist),
                                                        selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=400, detail="no such album")
    return album


@wrong("q2", expect="album_id: int")
async def read_album_str_id(album_id: str, session: SessionDep) -> AlbumOut:
    album = await session.scalar(select(Album).where(Album.album_id == album_id)
                                 .options(selectinload(Album.artist), selectinload(Album.tracks)))
    if album is None:
        raise HTTPException(status_code=404)
    return album


@wrong("q2", expect="one per row")
async def read_album_track_by_track(album_id: int, session: SessionDep) -> dict:
    album = await session.get(Album, album_id, options=[selectinload(Album.artist)])
    if album is None:
        raise HTTPException(status_code=404)
    ids = (await session.scalars(select(Track.track_id).where(Track.album_id == album_id)
                                 .order_by(Track.track_id))).all()
    tracks = [await session.get(Track, i) for i in ids]
    return {"album_id": album.album_id, "title": album.title,
            "artist": {"artist_id": album.artist.artist_id, "name": album.artist.name},
            "tracks": [{"track_id": t.track_id, "name": t.name, "milliseconds": t.milliseconds,
                        "unit_price": str(t.unit_price)} for t in tracks]}


_SHARED: dict[int, Any] = {}


@wrong("q2", expect="still checked out")
async def read_album_one_session_for_all(album_id: int, session: SessionDep) -> AlbumOut:
    # "opening a session per request is wasteful": one session, kept for every request
    shared = _SHARED.setdefault(id(session.bind), async_sessionmaker(session.bind, expire_on_commit=False)())
    album = await shared.get(Album, album_id, options=[selectinload(Album.artist),
                                                    selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=404)
    return album


@wrong("q2", expect="wrong order")
async def read_album_tracks_by_name(album_id: int, session: SessionDep) -> dict:
    album = await session.get(Album, album_id, options=[selectinload(Album.artist)])
    if album is None:
        raise HTTPException(status_code=404)
    tracks = (await session.scalars(select(Track).where(Track.album_id == album_id)
                                    .order_by(Track.name))).all()
    return {"album_id": album.album_id, "title": album.title,
            "artist": {"artist_id": album.artist.artist_id, "name": album.artist.name},
            "tracks": [{"track_id": t.track_id, "name": t.name, "milliseconds": t.milliseconds,
                        "unit_price": str(t.unit_price)} for t in tracks]}


@wrong("q2", expect="forget `await`")
async def read_album_get_not_awaited(album_id: int, session: SessionDep) -> AlbumOut:
    album = session.get(Album, album_id, options=[selectinload(Album.artist),
                                                  selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=404)
    return album


# --- q3: create_artist --------------------------------------------------------------------------


@wrong("q3", expect="stayed in the database")
async def create_artist_commits_twice(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name)
    session.add(artist)
    try:
        await session.commit()  # the artist is kept even if its albums fail
    except IntegrityError:
        raise HTTPException(status_code=409, detail="exists") from None
    for title in new.albums:
        session.add(Album(title=title, artist_id=artist.artist_id))
    await session.commit()
    return artist


@wrong("q3", expect="The database is the judge")
async def create_artist_select_first(new: ArtistIn, session: SessionDep) -> ArtistOut:
    if await session.scalar(select(Artist).where(Artist.name == new.name)) is not None:
        raise HTTPException(status_code=409, detail="exists")
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    await session.commit()
    return artist


@wrong("q3", expect="A lookup before the insert cannot prevent")
async def create_artist_looks_up_first(new: ArtistIn, session: SessionDep) -> ArtistOut:
    # compares like the index (lower), so one request at a time passes; two at once both
    # find the name free, both insert, and the second insert's IntegrityError is a 500
    taken = await session.scalar(select(Artist.artist_id)
                                 .where(func.lower(Artist.name) == new.name.lower()))
    if taken is not None:
        raise HTTPException(status_code=409, detail="exists")
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    await session.commit()
    return artist


@wrong("q3", expect="no artist")
async def create_artist_never_commits(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    try:
        await session.flush()  # an id, but no commit: closing the session rolls it back
    except IntegrityError:
        raise HTTPException(status_code=409, detail="exists") from None
    return artist


@wrong("q3", expect="Catch IntegrityError only")
async def create_artist_everything_is_a_conflict(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    try:
        await session.commit()
    except Exception:
        raise HTTPException(status_code=409, detail="exists") from None
    return artist


@wrong("q3", expect="let IntegrityError out")
async def create_artist_no_409(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    await session.commit()
    return artist


@wrong("q3", expect="expected 409")
async def create_artist_400(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    try:
        await session.commit()
    except IntegrityError:
        raise HTTPException(status_code=400, detail="exists") from None
    return artist


@wrong("q3", expect="never paste it into SQL")
async def create_artist_fstring(new: ArtistIn, session: SessionDep) -> ArtistOut:
    try:
        artist_id = await session.scalar(text(
            f"INSERT INTO artist (name) VALUES ('{new.name}') RETURNING artist_id"))  # the wrong answer
        for title in new.albums:
            await session.execute(text(
                f"INSERT INTO album (title, artist_id) VALUES ('{title}', {artist_id})"))
        await session.commit()
    except IntegrityError:
        raise HTTPException(status_code=409, detail="exists") from None
    return ArtistOut(artist_id=artist_id, name=new.name)


# --- q4: list_tracks ----------------------------------------------------------------------------

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0)]


def _page(q: str | None, limit: int, offset: int) -> Any:
    stmt = select(Track).order_by(Track.track_id).limit(limit).offset(offset)
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return stmt


@wrong("q4", expect="N+1")
async def list_tracks_n_plus_one(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                 offset: Offset = 0) -> list[TrackRow]:
    tracks = (await session.scalars(_page(q, limit, offset))).all()
    for track in tracks:
        album = await track.awaitable_attrs.album
        if album is not None:
            await album.awaitable_attrs.artist
    return list(tracks)


@wrong("q4", expect="MissingGreenlet")
async def list_tracks_lazy(session: SessionDep, q: str | None = None, limit: Limit = 20,
                           offset: Offset = 0) -> list[TrackRow]:
    return list((await session.scalars(_page(q, limit, offset))).all())


@wrong("q4", expect="LIKE wildcards")
async def list_tracks_unescaped(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.ilike(f"%{q}%"))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="became SQL")
async def list_tracks_fstring(session: SessionDep, q: str | None = None, limit: Limit = 20,
                              offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        safe = q.replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(text(f"lower(track.name) LIKE lower('%{safe}%') ESCAPE '\\'"))  # the wrong answer
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="ids have no gaps")
async def list_tracks_keyset_by_offset(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                       offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .where(Track.track_id > offset).order_by(Track.track_id).limit(limit))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="one off")
async def list_tracks_off_by_one(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                 offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(max(offset - 1, 0)))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="Query(ge=1, le=100)")
async def list_tracks_unbounded(session: SessionDep, q: str | None = None, limit: int = 20,
                                offset: int = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="in any case")
async def list_tracks_case_sensitive(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                     offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(func.instr(Track.name, q) > 0)
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="expected the first 20")
async def list_tracks_by_name(session: SessionDep, q: str | None = None, limit: Limit = 20,
                              offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.name).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="no ORDER BY")
async def list_tracks_unordered(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                offset: Offset = 0) -> list[TrackRow]:
    # right on SQLite only by luck: rowid order is track_id order there
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@wrong("q4", expect="in any case on PostgreSQL")
async def list_tracks_contains(session: SessionDep, q: str | None = None, limit: Limit = 20,
                               offset: Offset = 0) -> list[TrackRow]:
    # passes on SQLite, whose LIKE ignores ASCII case; PostgreSQL's LIKE does not
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        stmt = stmt.where(Track.name.contains(q, autoescape=True))
    return list((await session.scalars(stmt)).all())


@correct("q4")
async def list_tracks_lowered_in_python(session: SessionDep, q: str | None = None,
                                        limit: Limit = 20, offset: Offset = 0) -> list[TrackRow]:
    # joinedload of two many-to-one relationships (no unique() needed), q lowered in Python
    # and escaped by hand
    stmt = (select(Track).options(joinedload(Track.album).joinedload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(Track.name).like(f"%{escaped}%", escape="\\"))
    return [TrackRow.model_validate(track) for track in await session.scalars(stmt)]


# --- q5: track_lyrics ---------------------------------------------------------------------------


def fetch_lyrics(name: str) -> str:
    time.sleep(0.5)
    return f"(the lyrics of {name})"


_lock = asyncio.Lock()


@wrong("q5", expect="on the event loop's own thread")
async def track_lyrics_blocking(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    return {"track_id": track.track_id, "name": track.name, "lyrics": fetch_lyrics(track.name)}


@wrong("q5", expect="hands to_thread its result instead of the function")
async def track_lyrics_called_before_to_thread(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    lyrics = await asyncio.to_thread(fetch_lyrics(track.name))  # called here, on the loop
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


@wrong("q5", expect="never had two fetch_lyrics calls")
async def track_lyrics_waits_on_future(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    with ThreadPoolExecutor(1) as pool:
        lyrics = pool.submit(fetch_lyrics, track.name).result()  # blocks the loop while it waits
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


@wrong("q5", expect="never had two fetch_lyrics calls")
async def track_lyrics_one_at_a_time(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    async with _lock:  # "the vendor's client may not be thread-safe"
        lyrics = await asyncio.to_thread(fetch_lyrics, track.name)
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


_one_worker = ThreadPoolExecutor(max_workers=1)


@wrong("q5", expect="an executor with one thread")
async def track_lyrics_one_worker_thread(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    # awaited properly, but one worker thread runs the calls one after another
    lyrics = await asyncio.get_running_loop().run_in_executor(_one_worker, fetch_lyrics, track.name)
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


@wrong("q5", expect="never called fetch_lyrics")
async def track_lyrics_made_up(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    await asyncio.sleep(0.5)  # "stands in for the vendor"
    return {"track_id": track.track_id, "name": track.name, "lyrics": f"(the lyrics of {track.name})"}


@wrong("q5", expect="answer 404 first")
async def track_lyrics_fetches_before_404(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    name = track.name if track is not None else ""
    lyrics = await asyncio.to_thread(fetch_lyrics, name)
    if track is None:
        raise HTTPException(status_code=404)
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


@wrong("q5", expect="expected 404")
async def track_lyrics_no_404(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        return {"track_id": track_id, "name": "", "lyrics": ""}
    lyrics = await asyncio.to_thread(fetch_lyrics, track.name)
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}


# --- differently-correct answers, from the independent audit (answers2/a09.py) ---
# (its schemas are the reference ones, imported from course.apps.music_store)

def _tracks(q):
    stmt = select(Track).order_by(Track.track_id)
    if q is not None:
        stmt = stmt.where(Track.name.icontains(q, autoescape=True))
    return stmt


class Lyrics(BaseModel):
    track_id: int
    name: str
    lyrics: str


async def _track(session, track_id):
    t = await session.get(Track, track_id)
    if t is None:
        raise HTTPException(404, f"track {track_id} not found")
    return t


@correct("q1")
def create_app_plain(url):
    """engine made in the lifespan, disposed in finally."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        engine = create_async_engine(url)
        try:
            yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        finally:
            await engine.dispose()
    return FastAPI(lifespan=lifespan)


@correct("q1")
def create_app_plain_generator(url):
    """lifespan as a bare async generator function (FastAPI wraps it)."""
    async def lifespan(app):
        engine = create_async_engine(url, pool_pre_ping=True)
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        await engine.dispose()
    return FastAPI(lifespan=asynccontextmanager(lifespan))


@correct("q2")
async def read_album_joined_no_unique(album_id: int, session: SessionDep) -> AlbumOut:
    """joinedload of a collection without unique(): first() needs no unique(), and the ORM
    buffers every row, so the album's tracks are all there."""
    album = (await session.scalars(select(Album).where(Album.album_id == album_id)
                                   .options(joinedload(Album.artist), joinedload(Album.tracks)))).first()
    if album is None:
        raise HTTPException(404, "album not found")
    return album


@correct("q2")
async def read_album_plain(album_id: int, session: SessionDep) -> AlbumOut:
    """joinedload artist, selectinload tracks, 404."""
    album = await session.scalar(select(Album).where(Album.album_id == album_id)
                                 .options(joinedload(Album.artist), selectinload(Album.tracks)))
    if album is None:
        raise HTTPException(status_code=404, detail=f"album {album_id} not found")
    return album


@correct("q2")
async def read_album_get_options(album_id: int, session: SessionDep) -> AlbumOut:
    """session.get with options, selectinload both."""
    album = await session.get(Album, album_id, options=[selectinload(Album.artist), selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(404)
    return AlbumOut.model_validate(album)


@correct("q3")
async def create_artist_plain(new: ArtistIn, session: SessionDep) -> ArtistOut:
    """one transaction, IntegrityError -> rollback + 409."""
    artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])
    session.add(artist)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(status_code=409, detail=f"artist {new.name!r} exists") from None
    return artist


@correct("q3")
async def create_artist_core(new: ArtistIn, session: SessionDep) -> ArtistOut:
    """Core insert ... returning, executemany for albums, begin()."""
    try:
        async with session.begin():
            aid = (await session.execute(insert(Artist).values(name=new.name).returning(Artist.artist_id))).scalar_one()
            if new.albums:
                await session.execute(insert(Album), [{"title": t, "artist_id": aid} for t in new.albums])
    except IntegrityError:
        raise HTTPException(409, "name taken") from None
    return ArtistOut(artist_id=aid, name=new.name)


@correct("q4")
async def list_tracks_plain(session: SessionDep, q: str | None = None, limit: Limit = 20,
                            offset: Offset = 0) -> list[TrackRow]:
    """selectinload chain, icontains(autoescape=True)."""
    stmt = _tracks(q).options(selectinload(Track.album).selectinload(Album.artist))
    return list(await session.scalars(stmt.limit(limit).offset(offset)))


@correct("q5")
async def track_lyrics_plain(track_id: int, session: SessionDep) -> Lyrics:
    """asyncio.to_thread."""
    t = await _track(session, track_id)
    return Lyrics(track_id=t.track_id, name=t.name, lyrics=await asyncio.to_thread(fetch_lyrics, t.name))


@correct("q5")
async def track_lyrics_threadpool(track_id: int, session: SessionDep) -> Lyrics:
    """starlette's run_in_threadpool; session closed before the wait is not needed."""
    name = await session.scalar(select(Track.name).where(Track.track_id == track_id))
    if name is None:
        raise HTTPException(404, "no such track")
    return Lyrics(track_id=track_id, name=name, lyrics=await run_in_threadpool(fetch_lyrics, name))


@correct("q2")
async def read_album_two_queries(album_id: int, session: SessionDep) -> AlbumOut:
    """one row query album+artist, one for tracks, built by hand."""
    row = (await session.execute(select(Album, Artist).join(Artist, Artist.artist_id == Album.artist_id)
                                 .where(Album.album_id == album_id))).first()
    if row is None:
        raise HTTPException(404, f"album {album_id} not found")
    album, art = row
    tracks = (await session.scalars(select(Track).where(Track.album_id == album_id).order_by(Track.track_id))).all()
    return AlbumOut(album_id=album.album_id, title=album.title,
                    artist=ArtistOut(artist_id=art.artist_id, name=art.name),
                    tracks=[TrackOut.model_validate(t) for t in tracks])


# --- inputs the first corpus never sent: tracks stored out of id order (PostgreSQL), repeated
# album titles, a backslash and an empty text as searches; more differently-correct shapes ---

@wrong("q1", expect="is a sessionmaker")
def create_app_sync_sessionmaker(url):
    @asynccontextmanager
    async def lifespan(app):
        engine = create_async_engine(url)
        try:
            yield {"sessionmaker": sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)}
        finally:
            await engine.dispose()
    return FastAPI(lifespan=lifespan)

@wrong("q1", expect="still held")
def create_app_disposes_nothing(url):
    @asynccontextmanager
    async def lifespan(app):
        engine = create_async_engine(url)
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
    return FastAPI(lifespan=lifespan)

@correct("q1")
def create_app_exit_stack(url):
    @asynccontextmanager
    async def lifespan(app):
        async with AsyncExitStack() as stack:
            engine = create_async_engine(url, pool_size=3)
            stack.push_async_callback(engine.dispose)
            yield {"sessionmaker": async_sessionmaker(bind=engine, class_=AsyncSession, expire_on_commit=False)}
    app = FastAPI(lifespan=lifespan)
    return app

@correct("q1")
def create_app_state_too(url):
    @asynccontextmanager
    async def lifespan(app):
        engine = create_async_engine(url)
        app.state.engine = engine
        maker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.sessionmaker = maker
        yield {"sessionmaker": maker}
        await engine.dispose()
    return FastAPI(title="store", lifespan=lifespan)

def _album_dict(album, tracks):
    return {"album_id": album.album_id, "title": album.title,
            "artist": {"artist_id": album.artist.artist_id, "name": album.artist.name},
            "tracks": [{"track_id": t.track_id, "name": t.name, "milliseconds": t.milliseconds,
                        "unit_price": str(t.unit_price)} for t in tracks]}

@wrong("q2", expect="wrong order")
async def read_album_tracks_unordered(album_id: int, session: SessionDep) -> dict:
    album = await session.get(Album, album_id, options=[selectinload(Album.artist)])
    if album is None:
        raise HTTPException(status_code=404)
    tracks = (await session.scalars(select(Track).where(Track.album_id == album_id))).all()
    return _album_dict(album, tracks)

@wrong("q2", expect="wrong order")
async def read_album_tracks_by_length(album_id: int, session: SessionDep) -> dict:
    album = await session.get(Album, album_id, options=[selectinload(Album.artist)])
    if album is None:
        raise HTTPException(status_code=404)
    tracks = (await session.scalars(select(Track).where(Track.album_id == album_id)
                                    .order_by(Track.milliseconds.desc()))).all()
    return _album_dict(album, tracks)

@correct("q2")
async def read_album_sorted_in_python(album_id: int, session: SessionDep) -> AlbumOut:
    album = (await session.execute(select(Album).where(Album.album_id == album_id)
                                   .options(joinedload(Album.artist)))).scalar_one_or_none()
    if album is None:
        raise HTTPException(404, "no such album")
    tracks = sorted(await session.scalars(select(Track).where(Track.album_id == album_id)),
                    key=lambda t: t.track_id)
    return AlbumOut(album_id=album.album_id, title=album.title,
                    artist=ArtistOut.model_validate(album.artist),
                    tracks=[TrackOut.model_validate(t) for t in tracks])

@correct("q2")
async def read_album_one_joined_query(album_id: int, session: SessionDep) -> AlbumOut:
    result = await session.scalars(select(Album).where(Album.album_id == album_id)
                                   .options(joinedload(Album.artist), joinedload(Album.tracks)))
    album = result.unique().one_or_none()
    if album is None:
        raise HTTPException(status_code=404, detail="not found")
    return album

@wrong("q3", expect="stored the albums")
async def create_artist_set_of_titles(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name, albums=[Album(title=t) for t in set(new.albums)])
    session.add(artist)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409) from None
    return artist

@correct("q3")
async def create_artist_flush_then_albums(new: ArtistIn, session: SessionDep) -> ArtistOut:
    try:
        artist = Artist(name=new.name)
        session.add(artist)
        await session.flush()
        session.add_all([Album(title=t, artist_id=artist.artist_id) for t in new.albums])
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc.orig)[:50]) from exc
    return ArtistOut(artist_id=artist.artist_id, name=artist.name)

@correct("q3")
async def create_artist_begin_block(new: ArtistIn, session: SessionDep) -> ArtistOut:
    artist = Artist(name=new.name)
    try:
        async with session.begin():
            session.add(artist)
            for title in new.albums:
                artist.albums.append(Album(title=title))
    except IntegrityError:
        raise HTTPException(409, "taken") from None
    return ArtistOut.model_validate(artist)


@wrong("q4", expect="backslash")
async def list_tracks_escapes_wildcards_only(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                             offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        safe = q.replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Track.name.ilike(f"%{safe}%", escape="\\"))
    return list((await session.scalars(stmt)).all())

@wrong("q4", expect="LIKE wildcards")
async def list_tracks_bang_escape_without_bang(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                               offset: Offset = 0) -> list[TrackRow]:
    # escapes % and _ with "!" but never declares "!" as the escape character: LIKE ignores it
    stmt = (select(Track).options(selectinload(Track.album).selectinload(Album.artist))
            .order_by(Track.track_id).limit(limit).offset(offset))
    if q is not None:
        safe = q.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        stmt = stmt.where(func.lower(Track.name).like(f"%{safe.lower()}%"))
    return list((await session.scalars(stmt)).all())

@correct("q4")
async def list_tracks_instr_lower(session: SessionDep, q: str | None = None, limit: Limit = 20,
                                  offset: Offset = 0) -> list[TrackRow]:
    stmt = (select(Track).options(joinedload(Track.album).joinedload(Album.artist))
            .order_by(Track.track_id).offset(offset).limit(limit))
    if q:
        stmt = stmt.where(func.lower(Track.name).contains(q.lower(), autoescape=True))
    return (await session.scalars(stmt)).all()

@correct("q4")
async def list_tracks_nonempty_q(session: SessionDep, q: Annotated[str | None, Query(min_length=1)] = None,
                                 limit: Limit = 20, offset: Offset = 0) -> list[TrackRow]:
    stmt = select(Track).order_by(Track.track_id)
    if q is not None:
        stmt = stmt.filter(Track.name.icontains(q, autoescape=True))
    stmt = stmt.limit(limit).offset(offset).options(selectinload(Track.album).joinedload(Album.artist))
    return list(await session.scalars(stmt))


@wrong("q5", expect="on the event loop's own thread")
async def track_lyrics_sync_in_async_wrapper(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404)
    async def fetch():
        return fetch_lyrics(track.name)  # async wrapper, still runs on the loop
    return {"track_id": track.track_id, "name": track.name, "lyrics": await fetch()}

@wrong("q5", expect="expected 404")
async def track_lyrics_500_for_missing(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=500, detail="lookup failed")
    lyrics = await asyncio.to_thread(fetch_lyrics, track.name)
    return {"track_id": track.track_id, "name": track.name, "lyrics": lyrics}

@correct("q5")
async def track_lyrics_run_in_executor(track_id: int, session: SessionDep) -> dict:
    track = await session.get(Track, track_id)
    if track is None:
        raise HTTPException(status_code=404, detail="no such track")
    loop = asyncio.get_running_loop()
    lyrics = await loop.run_in_executor(None, fetch_lyrics, track.name)
    return {"track_id": track_id, "name": track.name, "lyrics": lyrics}

@correct("q5")
async def track_lyrics_lambda(track_id: int, session: SessionDep) -> dict:
    name = await session.scalar(select(Track.name).where(Track.track_id == track_id))
    if name is None:
        raise HTTPException(status_code=404)
    return {"track_id": track_id, "name": name, "lyrics": await asyncio.to_thread(lambda: fetch_lyrics(name))}


# --- connections dropped unclosed: reported, and closed by the check (nothing prints later) ---

@wrong("q2", expect="dropped without being closed")
async def read_album_own_session(album_id: int, request: Request) -> AlbumOut:
    session = request.state.sessionmaker()  # BUG: opened by hand, never closed
    album = await session.get(Album, album_id, options=[selectinload(Album.artist),
                                                       selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=404)
    return album


@wrong("q2", expect="dropped without being closed")
async def read_album_extra_connection(album_id: int, session: SessionDep) -> AlbumOut:
    conn = await session.bind.connect()  # BUG: a second connection, never closed
    await conn.execute(select(1))
    album = await session.get(Album, album_id, options=[selectinload(Album.artist),
                                                       selectinload(Album.tracks)])
    if album is None:
        raise HTTPException(status_code=404)
    return album
