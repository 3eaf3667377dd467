"""Wrong answers to exercises/10-performance-and-scale-workbook.ipynb."""

import asyncio
import concurrent.futures
import itertools
import math
import threading
from collections import defaultdict
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import contains_eager, joinedload, selectinload
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from starlette.concurrency import run_in_threadpool

from course.models import Album, Artist, Track
from tests.corpus import correct, wrong

# --- q1: sized_engine ---------------------------------------------------------------------


@wrong("q1", expect="round up")
def sized_engine_rounds_down(url, rate, latency_ms):
    return create_async_engine(url, pool_size=int(rate * latency_ms / 1000), max_overflow=0)


@wrong("q1", expect="only 1 request could hold a connection at once")
def sized_engine_one_connection(url, rate, latency_ms):
    # "async needs only one connection": requests then queue for it
    return create_async_engine(url, pool_size=1, max_overflow=0)


@wrong("q1", expect="In floating point")
def sized_engine_in_floating_point(url, rate, latency_ms):
    # 100 * (70 / 1000) is 7.000000000000001, which math.ceil makes 8
    return create_async_engine(url, pool_size=math.ceil(rate * (latency_ms / 1000)), max_overflow=0)


@wrong("q1", expect="the latency is in milliseconds")
def sized_engine_forgets_milliseconds(url, rate, latency_ms):
    return create_async_engine(url, pool_size=rate * latency_ms, max_overflow=0)


@wrong("q1", expect="ignores how long each request holds")
def sized_engine_by_rate_only(url, rate, latency_ms):
    return create_async_engine(url, pool_size=rate, max_overflow=0)


@wrong("q1", expect="max_overflow=10 lets the pool open")
def sized_engine_keeps_default_overflow(url, rate, latency_ms):
    return create_async_engine(url, pool_size=math.ceil(rate * latency_ms / 1000))


@wrong("q1", expect="overflow connections are closed as soon as they come back")
def sized_engine_half_overflow(url, rate, latency_ms):
    needed = math.ceil(rate * latency_ms / 1000)
    return create_async_engine(url, pool_size=max(1, needed // 2), max_overflow=needed - max(1, needed // 2))


@wrong("q1", expect="NullPool")
def sized_engine_null_pool(url, rate, latency_ms):
    return create_async_engine(url, poolclass=NullPool)


@wrong("q1", expect="synchronous")
def sized_engine_sync(url, rate, latency_ms):
    return create_engine(url.set(drivername="sqlite"), pool_size=math.ceil(rate * latency_ms / 1000),
                         max_overflow=0)


@wrong("q1", expect="another database")
def sized_engine_own_database(url, rate, latency_ms):
    return create_async_engine("sqlite+aiosqlite:///chinook.db",
                               pool_size=math.ceil(rate * latency_ms / 1000), max_overflow=0)


@wrong("q1", expect="more than rate × latency needs")
def sized_engine_one_spare(url, rate, latency_ms):
    return create_async_engine(url, pool_size=math.ceil(rate * latency_ms / 1000) + 1, max_overflow=0)


@wrong("q1", expect="should return the AsyncEngine")
def sized_engine_returns_size(url, rate, latency_ms):
    return math.ceil(rate * latency_ms / 1000)


# --- q2: add_name_route -------------------------------------------------------------------


@wrong("q2", expect="ran on the event loop's own thread")
def name_route_async_blocking(app, lookup):
    @app.get("/tracks/{track_id}/name")
    async def track_name(track_id: int):
        name = lookup(track_id)
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="ran on the event loop's own thread")
def name_route_to_thread_of_result(app, lookup):
    @app.get("/tracks/{track_id}/name")
    async def track_name(track_id: int):
        name = await asyncio.to_thread(lambda value=lookup(track_id): value)
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="waited for it without awaiting")
def name_route_future_result(app, lookup):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)

    @app.get("/tracks/{track_id}/name")
    async def track_name(track_id: int):
        name = pool.submit(lookup, track_id).result()
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="something serialises them")
def name_route_with_lock(app, lookup):
    lock = threading.Lock()

    @app.get("/tracks/{track_id}/name")
    def track_name(track_id: int):
        with lock:  # "the driver is not thread-safe"
            name = lookup(track_id)
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="expected 404")
def name_route_200_for_missing(app, lookup):
    @app.get("/tracks/{track_id}/name")
    def track_name(track_id: int):
        return {"track_id": track_id, "name": lookup(track_id)}


@wrong("q2", expect="expected {'track_id': 7")
def name_route_other_key(app, lookup):
    @app.get("/tracks/{track_id}/name")
    def track_name(track_id: int):
        name = lookup(track_id)
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"id": track_id, "name": name}


@wrong("q2", expect="Is the route's path exactly as asked")
def name_route_other_path(app, lookup):
    @app.get("/track/{track_id}")
    def track_name(track_id: int):
        name = lookup(track_id)
        if name is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="times for 4 requests: once per request")
def name_route_looks_up_twice(app, lookup):
    @app.get("/tracks/{track_id}/name")
    def track_name(track_id: int):
        if lookup(track_id) is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": lookup(track_id)}


# --- q3: add_previews_route ---------------------------------------------------------------


@wrong("q3", expect="nothing limited them")
def previews_unbounded(app, fetch_preview, limit):
    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return await asyncio.gather(*(fetch_preview(i) for i in ids))


@wrong("q3", expect="its own semaphore, or batches of")
def previews_in_batches(app, fetch_preview, limit):
    # no semaphore: waves of `limit` per request, so concurrent requests add up past the limit
    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        out = []
        for start in range(0, len(ids), limit):
            out += await asyncio.gather(*(fetch_preview(i) for i in ids[start:start + limit]))
        return out


@wrong("q3", expect="its own semaphore, or batches of")
def previews_semaphore_per_request(app, fetch_preview, limit):
    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        semaphore = asyncio.Semaphore(limit)

        async def one(i):
            async with semaphore:
                return await fetch_preview(i)

        return await asyncio.gather(*(one(i) for i in ids))


@wrong("q3", expect="one at a time within each request")
def previews_sequential(app, fetch_preview, limit):
    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return [await fetch_preview(i) for i in ids]


@wrong("q3", expect="your limit lets 5 in, not 4")
def previews_off_by_one(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(limit + 1)

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return await asyncio.gather(*(one(i) for i in ids))


@wrong("q3", expect="Semaphore(limit - 1)")
def previews_one_slot_short(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(max(1, limit - 1))  # one slot never used

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return await asyncio.gather(*(one(i) for i in ids))


@wrong("q3", expect="in the order the calls finished")
def previews_as_completed(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return [await done for done in asyncio.as_completed([one(i) for i in ids])]


@wrong("q3", expect="your limit lets 4 in, not 2")
def previews_fixed_limit(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(4)  # the limit in the example, not the one passed in

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return await asyncio.gather(*(one(i) for i in ids))


@wrong("q3", expect="at most 2 at once")
def previews_lock_per_two(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(2)  # "a small number is always safe"

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return await asyncio.gather(*(one(i) for i in ids))


@wrong("q3", expect="expected the list")
def previews_wrapped(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        return {"previews": await asyncio.gather(*(one(i) for i in ids))}


# --- q4: add_catalogue_route --------------------------------------------------------------


def _catalogue(artist) -> dict:
    return {"artist": artist.name,
            "albums": [{"title": a.title, "tracks": [t.name for t in a.tracks]} for a in artist.albums]}


def _not_found(artist_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"artist {artist_id} not found")


@wrong("q4", expect="the N+1 pattern")
def catalogue_n_plus_one(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        artist = await session.get(Artist, artist_id)
        if artist is None:
            raise _not_found(artist_id)
        albums = []
        for album in await artist.awaitable_attrs.albums:
            tracks = await album.awaitable_attrs.tracks
            albums.append({"title": album.title, "tracks": [t.name for t in tracks]})
        return {"artist": artist.name, "albums": albums}


@wrong("q4", expect="the query selectinload adds")
def catalogue_selectinload(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(Artist.artist_id == artist_id)
                .options(joinedload(Artist.albums).selectinload(Album.tracks)))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        if artist is None:
            raise _not_found(artist_id)
        return _catalogue(artist)


@wrong("q4", expect="one per level (artist, albums, tracks)")
def catalogue_selectinload_chain(app, get_session):
    # three statements whatever the number of albums: not N+1, not one statement either
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(Artist.artist_id == artist_id)
                .options(selectinload(Artist.albums).selectinload(Album.tracks)))
        artist = await session.scalar(stmt)
        if artist is None:
            raise _not_found(artist_id)
        return _catalogue(artist)


@wrong("q4", expect="unique() method must be invoked")
def catalogue_joinedload_without_unique(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(Artist.artist_id == artist_id)
                .options(joinedload(Artist.albums).joinedload(Album.tracks)))
        artist = (await session.scalars(stmt)).one_or_none()
        if artist is None:
            raise _not_found(artist_id)
        return _catalogue(artist)


@wrong("q4", expect="as an inner join from albums to tracks does")
def catalogue_inner_join(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        rows = (await session.execute(text(
            "SELECT ar.name, al.album_id, al.title, t.name FROM artist AS ar "
            "LEFT JOIN album AS al ON al.artist_id = ar.artist_id "
            "JOIN track AS t ON t.album_id = al.album_id "
            "WHERE ar.artist_id = :a ORDER BY al.album_id, t.track_id"), {"a": artist_id})).all()
        name = (await session.execute(text("SELECT name FROM artist WHERE artist_id = :a"),
                                      {"a": artist_id})).scalar() if not rows else rows[0][0]
        if name is None:
            raise _not_found(artist_id)
        albums: dict[int, dict] = {}
        for _, album_id, title, track in rows:
            albums.setdefault(album_id, {"title": title, "tracks": []})["tracks"].append(track)
        return {"artist": name, "albums": list(albums.values())}


@wrong("q4", expect="order them by track_id")
def catalogue_tracks_by_name(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(Artist.artist_id == artist_id)
                .options(joinedload(Artist.albums).joinedload(Album.tracks)))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        if artist is None:
            raise _not_found(artist_id)
        return {"artist": artist.name,
                "albums": [{"title": a.title, "tracks": sorted(t.name for t in a.tracks)}
                           for a in artist.albums]}


@wrong("q4", expect="it has no albums")
def catalogue_404_without_albums(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Album).where(Album.artist_id == artist_id).order_by(Album.album_id)
                .options(joinedload(Album.artist), joinedload(Album.tracks)))
        albums = (await session.scalars(stmt)).unique().all()
        if not albums:
            raise _not_found(artist_id)
        return {"artist": albums[0].artist.name,
                "albums": [{"title": a.title, "tracks": [t.name for t in a.tracks]} for a in albums]}


@wrong("q4", expect="MissingGreenlet")
def catalogue_lazy_load(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        artist = await session.get(Artist, artist_id)
        if artist is None:
            raise _not_found(artist_id)
        return _catalogue(artist)  # artist.albums is not loaded: a lazy load under asyncio


@wrong("q4", expect="is inside your SQL text")
def catalogue_fstring(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(text(f"artist.artist_id = {artist_id}"))
                .options(joinedload(Artist.albums).joinedload(Album.tracks)))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        if artist is None:
            raise _not_found(artist_id)
        return _catalogue(artist)


@wrong("q4", expect="expected 404")
def catalogue_null_for_unknown(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        stmt = (select(Artist).where(Artist.artist_id == artist_id)
                .options(joinedload(Artist.albums).joinedload(Album.tracks)))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        return None if artist is None else _catalogue(artist)


# --- differently-correct answers, from the independent audit (answers2/a10.py) ---

@correct("q1")
def sized_engine_plain(url, rate, latency_ms):
    """ceil(rate x latency / 1000), no overflow."""
    return create_async_engine(url, pool_size=math.ceil(rate * latency_ms / 1000), max_overflow=0)


@correct("q1")
def sized_engine_intceil(url, rate, latency_ms):
    """integer ceiling, explicit pool class and timeout."""
    n = -(-rate * latency_ms // 1000)
    return create_async_engine(url, poolclass=AsyncAdaptedQueuePool, pool_size=n, max_overflow=0, pool_timeout=30)


@correct("q2")
def add_name_route_plain(app, lookup):
    """asyncio.to_thread."""
    @app.get("/tracks/{track_id}/name")
    async def name(track_id: int):
        n = await asyncio.to_thread(lookup, track_id)
        if n is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": n}


@correct("q2")
def add_name_route_def_route(app, lookup):
    """a plain def route, which FastAPI runs in its thread pool."""
    def name(track_id: int):
        n = lookup(track_id)
        if n is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": n}
    app.add_api_route("/tracks/{track_id}/name", name, methods=["GET"])


@correct("q3")
def add_previews_route_plain(app, fetch_preview, limit):
    """one semaphore per app, gather."""
    sem = asyncio.Semaphore(limit)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]):
        async def one(i):
            async with sem:
                return await fetch_preview(i)
        return list(await asyncio.gather(*(one(i) for i in ids)))


@correct("q3")
def add_previews_route_taskgroup(app, fetch_preview, limit):
    """BoundedSemaphore on app.state, TaskGroup."""
    app.state.preview_slots = asyncio.BoundedSemaphore(limit)

    async def previews(ids: Annotated[list[int], Query()]):
        async def one(i):
            async with app.state.preview_slots:
                return await fetch_preview(i)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(i)) for i in ids]
        return [t.result() for t in tasks]
    app.add_api_route("/previews", previews, methods=["GET"])


@correct("q4")
def add_catalogue_route_joined_no_unique(app, get_session):
    """joinedload of collections without unique(): first() needs no unique(), and the ORM
    buffers every row, so every album and track is there."""
    @app.get("/artists/{artist_id}/catalogue")
    async def cat(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        artist = (await session.scalars(select(Artist).where(Artist.artist_id == artist_id)
                                        .options(joinedload(Artist.albums).joinedload(Album.tracks)))).first()
        if artist is None:
            raise HTTPException(404, f"artist {artist_id} not found")
        return _catalogue(artist)


@correct("q4")
def add_catalogue_route_joined_unique(app, get_session):
    """joinedload chain + unique(), one statement."""
    @app.get("/artists/{artist_id}/catalogue")
    async def cat(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]):
        artist = (await session.scalars(select(Artist).where(Artist.artist_id == artist_id)
                                        .options(joinedload(Artist.albums).joinedload(Album.tracks)))).unique().first()
        if artist is None:
            raise HTTPException(status_code=404, detail=f"artist {artist_id} not found")
        return _catalogue(artist)


@correct("q4")
def add_catalogue_route_columns(app, get_session):
    """one outer-join SELECT of columns, assembled in Python."""
    SessionDep = Annotated[AsyncSession, Depends(get_session)]

    async def cat(artist_id: int, session: SessionDep):
        rows = (await session.execute(select(Artist.name, Album.album_id, Album.title, Track.name)
                                      .outerjoin(Album, Album.artist_id == Artist.artist_id)
                                      .outerjoin(Track, Track.album_id == Album.album_id)
                                      .where(Artist.artist_id == artist_id)
                                      .order_by(Album.album_id, Track.track_id))).all()
        if not rows:
            raise HTTPException(404, f"artist {artist_id} not found")
        titles, tracks = {}, defaultdict(list)
        for _, aid, title, tname in rows:
            if aid is None:
                continue
            titles[aid] = title
            if tname is not None:
                tracks[aid].append(tname)
        return {"artist": rows[0][0], "albums": [{"title": titles[a], "tracks": tracks[a]} for a in titles]}
    app.add_api_route("/artists/{artist_id}/catalogue", cat, methods=["GET"])


@correct("q2")
def add_name_route_threadpool(app, lookup):
    """starlette's run_in_threadpool."""
    @app.get("/tracks/{track_id}/name")
    async def name(track_id: int):
        n = await run_in_threadpool(lookup, track_id)
        if n is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": n}


# --- inputs the first corpus never sent: ids that repeat, a list read from the body, a value
# passed to a thread helper, albums stored out of id order (checked on PostgreSQL too) ---


@wrong("q1", expect="round up")
def sized_engine_rounds_to_nearest(url, rate, latency_ms):
    return create_async_engine(url, pool_size=max(1, round(rate * latency_ms / 1000)), max_overflow=0)

@correct("q1")
def sized_engine_integer_ceiling_with_timeout(url, rate, latency_ms):
    return create_async_engine(url, pool_size=(rate * latency_ms + 999) // 1000, max_overflow=0, pool_timeout=60)

@correct("q1")
def sized_engine_decimal_ceiling(url, rate, latency_ms):
    from decimal import ROUND_CEILING, Decimal
    n = int((Decimal(rate) * Decimal(latency_ms) / 1000).to_integral_value(ROUND_CEILING))
    return create_async_engine(url, pool_size=n, max_overflow=0, pool_pre_ping=True)

@wrong("q2", expect="pass the function")
def add_name_route_to_thread_of_result(app, lookup):
    @app.get("/tracks/{track_id}/name")
    async def r(track_id: int) -> dict:
        name = await asyncio.to_thread(lookup(track_id))
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}

@wrong("q2", expect="pass the function")
def add_name_route_threadpool_of_result(app, lookup):
    @app.get("/tracks/{track_id}/name")
    async def r(track_id: int) -> dict:
        name = await run_in_threadpool(lookup(track_id))
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}

@wrong("q2", expect="expected 404")
def add_name_route_zero_is_falsy(app, lookup):
    @app.get("/tracks/{track_id}/name")
    def r(track_id: int) -> dict:
        if not track_id:
            return {"track_id": track_id, "name": None}
        name = lookup(track_id)
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}

@correct("q2")
def add_name_route_run_in_executor(app, lookup):
    @app.get("/tracks/{track_id}/name")
    async def r(track_id: int) -> dict:
        name = await asyncio.get_running_loop().run_in_executor(None, lookup, track_id)
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}

@wrong("q3", expect="Query()")
def add_previews_route_list_in_body(app, fetch_preview, limit):
    sem = asyncio.Semaphore(limit)
    async def one(i):
        async with sem:
            return await fetch_preview(i)
    @app.get("/previews")
    async def p(ids: list[int]) -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in ids)))

@wrong("q3", expect="asked for twice must be in the answer twice")
def add_previews_route_drops_repeats(app, fetch_preview, limit):
    sem = asyncio.Semaphore(limit)
    async def one(i):
        async with sem:
            return i, await fetch_preview(i)
    @app.get("/previews")
    async def p(ids: Annotated[list[int], Query()]) -> list[str]:
        got = dict(await asyncio.gather(*(one(i) for i in dict.fromkeys(ids))))
        return list(got.values())

@correct("q3")
def add_previews_route_fetches_each_id_once(app, fetch_preview, limit):
    sem = asyncio.Semaphore(limit)
    async def one(i):
        async with sem:
            return await fetch_preview(i)
    @app.get("/previews")
    async def p(ids: Annotated[list[int], Query()]) -> list[str]:
        unique = list(dict.fromkeys(ids))
        got = dict(zip(unique, await asyncio.gather(*(one(i) for i in unique))))
        return [got[i] for i in ids]

@correct("q3")
def add_previews_route_task_group_query_default(app, fetch_preview, limit):
    sem = asyncio.BoundedSemaphore(limit)
    async def one(i):
        async with sem:
            return await fetch_preview(i)
    @app.get("/previews")
    async def p(ids: list[int] = Query()) -> list[str]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(i)) for i in ids]
        return [t.result() for t in tasks]

@wrong("q4", expect="in another order than album_id")
def add_catalogue_route_rows_by_title(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def c(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(
            select(Artist.name, Album.album_id, Album.title, Track.name.label("track"))
            .select_from(Artist).outerjoin(Album, Album.artist_id == Artist.artist_id)
            .outerjoin(Track, Track.album_id == Album.album_id)
            .where(Artist.artist_id == artist_id).order_by(Album.title, Track.track_id))).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums = {}
        for r in rows:
            if r.album_id is not None:
                albums.setdefault(r.album_id, {"title": r.title, "tracks": []})
                if r.track is not None:
                    albums[r.album_id]["tracks"].append(r.track)
        return {"artist": rows[0].name, "albums": list(albums.values())}

@wrong("q4", expect="2 SQL statements")
def add_catalogue_route_two_queries(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def c(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        name = await session.scalar(select(Artist.name).where(Artist.artist_id == artist_id))
        if name is None:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums = (await session.scalars(select(Album).where(Album.artist_id == artist_id)
                                         .options(joinedload(Album.tracks)).order_by(Album.album_id))).unique().all()
        return {"artist": name, "albums": [{"title": a.title, "tracks": [t.name for t in a.tracks]} for a in albums]}

@wrong("q4", expect="in another order than album_id")
def add_catalogue_route_rows_unordered(app, get_session):
    @app.get("/artists/{artist_id}/catalogue")
    async def c(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(
            select(Artist.name, Album.album_id, Album.title, Track.name.label("track"))
            .select_from(Artist).outerjoin(Album, Album.artist_id == Artist.artist_id)
            .outerjoin(Track, Track.album_id == Album.album_id)
            .where(Artist.artist_id == artist_id))).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums = {}
        for r in rows:
            if r.album_id is not None:
                albums.setdefault(r.album_id, {"title": r.title, "tracks": []})
                if r.track is not None:
                    albums[r.album_id]["tracks"].append(r.track)
        return {"artist": rows[0].name, "albums": list(albums.values())}


@wrong("q3", expect="in another order than the ids'")
def add_previews_route_sorted_ids(app, fetch_preview, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(i):
        async with semaphore:
            return await fetch_preview(i)

    @app.get("/previews")
    async def previews(ids: Annotated[list[int], Query()]) -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in sorted(ids))))


@wrong("q4", expect="failed on PostgreSQL")
def add_catalogue_route_group_concat(app, get_session):
    # one statement, but with SQLite's group_concat, which PostgreSQL does not have
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(
            select(Artist.name, Album.title, func.group_concat(Track.name, "\x1f").label("names"))
            .select_from(Artist).outerjoin(Album, Album.artist_id == Artist.artist_id)
            .outerjoin(Track, Track.album_id == Album.album_id)
            .where(Artist.artist_id == artist_id)
            .group_by(Artist.name, Album.album_id, Album.title).order_by(Album.album_id))).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        return {"artist": rows[0].name,
                "albums": [{"title": r.title, "tracks": r.names.split("\x1f") if r.names else []}
                           for r in rows if r.title is not None]}


@correct("q4")
def add_catalogue_route_contains_eager(app, get_session):
    # explicit outer joins filled into the relationships: the order is the query's own
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        stmt = (select(Artist).outerjoin(Artist.albums).outerjoin(Album.tracks)
                .options(contains_eager(Artist.albums).contains_eager(Album.tracks))
                .where(Artist.artist_id == artist_id).order_by(Album.album_id, Track.track_id))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        if artist is None:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        return {"artist": artist.name,
                "albums": [{"title": a.title, "tracks": [t.name for t in a.tracks]} for a in artist.albums]}


@correct("q4")
def add_catalogue_route_text_sql(app, get_session):
    # one hand-written statement, bound and ordered, read row by row
    sql = text("SELECT ar.name, al.album_id, al.title, t.name AS track FROM artist ar "
               "LEFT JOIN album al ON al.artist_id = ar.artist_id "
               "LEFT JOIN track t ON t.album_id = al.album_id "
               "WHERE ar.artist_id = :artist_id ORDER BY al.album_id, t.track_id")

    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(sql, {"artist_id": artist_id})).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums: dict[int, dict] = {}
        for name, album_id, title, track in rows:
            if album_id is not None:
                tracks = albums.setdefault(album_id, {"title": title, "tracks": []})["tracks"]
                if track is not None:
                    tracks.append(track)
        return {"artist": rows[0][0], "albums": list(albums.values())}


@wrong("q4", expect="in another order than album_id")
def add_catalogue_route_contains_eager_unordered(app, get_session):
    # explicit joins without ORDER BY: the rows come back as PostgreSQL stored them
    @app.get("/artists/{artist_id}/catalogue")
    async def catalogue(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        stmt = (select(Artist).outerjoin(Artist.albums).outerjoin(Album.tracks)
                .options(contains_eager(Artist.albums).contains_eager(Album.tracks))
                .where(Artist.artist_id == artist_id))
        artist = (await session.scalars(stmt)).unique().one_or_none()
        if artist is None:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        return {"artist": artist.name,
                "albums": [{"title": a.title, "tracks": [t.name for t in a.tracks]} for a in artist.albums]}


# --- closed after the audit: an empty name, a str id, albums that share a title -----------


@wrong("q2", expect="an empty name, not None")
def add_name_route_empty_name_is_missing(app, lookup):
    # `not name` is also true of "", a track's name all the same
    @app.get("/tracks/{track_id}/name")
    def r(track_id: int) -> dict:
        name = lookup(track_id)
        if not name:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="a str, not an int track id")
def add_name_route_str_id(app, lookup):
    # the path's text is handed on as "7": lookup finds no track, so every request is a 404
    @app.get("/tracks/{track_id}/name")
    def r(track_id: str) -> dict:
        name = lookup(track_id)
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": track_id, "name": name}


@wrong("q2", expect="declare `track_id: int`")
def add_name_route_untyped_id(app, lookup):
    # no annotation: FastAPI passes the path segment as a str
    @app.get("/tracks/{track_id}/name")
    def r(track_id) -> dict:
        name = lookup(track_id)
        if name is None:
            raise HTTPException(404, detail=f"track {track_id} not found")
        return {"track_id": int(track_id), "name": name}


@correct("q2")
def add_name_route_match_none(app, lookup):
    """a match statement on the lookup's result: only None is missing, "" is a name."""
    @app.get("/tracks/{track_id}/name")
    async def r(track_id: Annotated[int, Path()]) -> dict:
        match await asyncio.to_thread(lookup, track_id):
            case None:
                raise HTTPException(404, detail=f"track {track_id} not found")
            case name:
                return {"track_id": track_id, "name": name}


@wrong("q4", expect="group the rows by album_id")
def add_catalogue_route_grouped_by_title(app, get_session):
    # a dict keyed by title makes one album of two that share a title
    @app.get("/artists/{artist_id}/catalogue")
    async def c(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(
            select(Artist.name, Album.title, Track.name.label("track"))
            .select_from(Artist).outerjoin(Album, Album.artist_id == Artist.artist_id)
            .outerjoin(Track, Track.album_id == Album.album_id)
            .where(Artist.artist_id == artist_id).order_by(Album.album_id, Track.track_id))).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums: dict = {}
        for row in rows:
            if row.title is not None:
                entry = albums.setdefault(row.title, {"title": row.title, "tracks": []})
                if row.track is not None:
                    entry["tracks"].append(row.track)
        return {"artist": rows[0].name, "albums": list(albums.values())}


@correct("q4")
def add_catalogue_route_groupby_album_id(app, get_session):
    """one outer-join SELECT, grouped with itertools.groupby on album_id (titles may repeat)."""
    @app.get("/artists/{artist_id}/catalogue")
    async def c(artist_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> dict:
        rows = (await session.execute(
            select(Artist.name, Album.album_id, Album.title, Track.name.label("track"))
            .select_from(Artist).outerjoin(Album, Album.artist_id == Artist.artist_id)
            .outerjoin(Track, Track.album_id == Album.album_id)
            .where(Artist.artist_id == artist_id).order_by(Album.album_id, Track.track_id))).all()
        if not rows:
            raise HTTPException(404, detail=f"artist {artist_id} not found")
        albums = [{"title": group[0].title, "tracks": [r.track for r in group if r.track is not None]}
                  for aid, grouped in itertools.groupby(rows, key=lambda r: r.album_id)
                  if aid is not None for group in [list(grouped)]]
        return {"artist": rows[0].name, "albums": albums}
