"""q2: GET /albums/{album_id}."""

from __future__ import annotations

import random
from typing import Any

from course.checking.backends import backend_name
from course.checking.checks import Exercise, Wrong
from course.checking.races import money
from course.db.engines import BACKENDS, Backend
from course.probes import (
    StatementCounter,
)

from ._common import _BadResponse, _database, _leaks, _mountable, _send, _served, _status

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
                        "unit_price": money(t.unit_price)} for t in tracks]}


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
    for backend in BACKENDS:
        await _check_read_album_on(read_album, backend, ids)
    return (f"on SQLite and PostgreSQL: {len(ids)} albums (ids with gaps, one with no tracks, "
            "tracks stored out of order) with their artist and tracks in track order, in at most "
            "3 statements each; 404 for a missing album; 422 for a path that is not an integer; "
            "every connection returned.")


async def _check_read_album_on(read_album: Any, backend: Backend, ids: list[int]) -> None:
    if backend == "sqlite":
        url = await _database("check-09-q2", backend, *Q2_SETUP)
    else:
        url = await _database("check_09_q2", backend, *Q2_SETUP, *Q2_SHUFFLE)
    on = backend_name(backend)
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
