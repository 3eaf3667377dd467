"""q4: GET /tracks?q=&limit=&offset=, a page of a search."""

from __future__ import annotations

from typing import Any

from course.checking.checks import Exercise, LearnerError, Wrong
from course.checking.races import money
from course.db.engines import BACKENDS, Backend
from course.probes import (
    HOSTILE_INPUTS,
    StatementCounter,
)

from ._common import _database, _leaks, _mountable, _send, _served, _status

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
    return [{"track_id": r.track_id, "name": r.name, "unit_price": money(r.unit_price),
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
    for backend in BACKENDS:
        many = await _check_list_tracks_on(list_tracks, backend)
    return ("on SQLite and PostgreSQL: pages of every size over ids with gaps, in order, with "
            f"album and artist, in at most 3 statements (60 tracks: {many}); 422 for a bad limit "
            f"or offset; {len(SEARCHES)} searches ignoring case (quotes, %, _, a backslash and an "
            "empty text among them), each treated as plain text.")


async def _check_list_tracks_on(list_tracks: Any, backend: Backend) -> int:
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
