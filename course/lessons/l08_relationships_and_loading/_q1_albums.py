"""q1: albums with their tracks, in at most two statements."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload

from course.checking.checks import Exercise, LearnerError, Wrong
from course.models import Album

from ._common import ARTIST_ID, LIMIT, NO_ALBUMS_ID, Recorder, fstring, in_session, on_both, pasted


async def _expected_albums(engine: AsyncEngine, artist_id: int) -> list[tuple[str, list[str]]]:
    async with AsyncSession(engine) as session:
        albums = await session.scalars(
            select(Album).where(Album.artist_id == artist_id).order_by(Album.album_id)
            .options(selectinload(Album.tracks)))
        return [(a.title, [t.name for t in a.tracks]) for a in albums]


def _album_rows(got: Any, what: str) -> list[tuple[str, list[str]]]:
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (title, [track names]) pairs, not "
                    f"{type(got).__name__}.")
    rows = []
    for item in got:
        if isinstance(item, Album):
            raise Wrong(f"{what} returned Album objects; return plain data, a list of "
                        "(album title, [track names]) pairs, built inside your function.")
        try:
            title, names = item
            rows.append((title, list(names)))
        except (TypeError, ValueError):
            raise Wrong(f"{what} should return (title, [track names]) pairs; one item is "
                        f"{item!r}.") from None
    return rows


ARTIST_CASES = [(90, "Iron Maiden"), (1, "AC/DC"), (ARTIST_ID, "the check's artist"),
                (NO_ALBUMS_ID, "an artist without albums"), (424242, "an artist that does not exist")]
Q1_FIX = "add `.options(selectinload(Album.tracks))` to the query for the albums."


def _not_pasted(artist_id: int, exc: LearnerError | None, seen: Recorder) -> None:
    """The verdict on an artist id written into the SQL text (whether or not it failed)."""
    if pasted(seen, artist_id):
        raise fstring(artist_id, "`select(Album).where(Album.artist_id == artist_id)` binds it")


async def _check_artist_albums(artist_albums) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for artist_id, who in ARTIST_CASES:
            what = f"artist_albums(session, {artist_id})"
            got, seen = await in_session(engine, artist_albums, artist_id, what=what, fix=Q1_FIX,
                                         explain=partial(_not_pasted, artist_id))
            _not_pasted(artist_id, None, seen)
            rows = _album_rows(got, what)
            expected = await _expected_albums(engine, artist_id)
            if seen.count > 2:
                raise Wrong(_too_many(what, seen.statements, len(expected)))
            if rows == expected:
                continue
            got_titles = [title for title, _ in rows]
            want_titles = [title for title, _ in expected]
            if set(got_titles) < set(want_titles) and artist_id == ARTIST_ID:
                missing = sorted(set(want_titles) - set(got_titles))
                raise Wrong(f"{what} left out the album {missing[0]!r}, which has no tracks: an "
                            "inner JOIN drops it. Load the albums, and their tracks with "
                            "selectinload (or an outer join).")
            twice = sorted({t for t in want_titles if want_titles.count(t) > 1})
            if twice and got_titles.count(twice[0]) < want_titles.count(twice[0]):
                raise Wrong(f"{what} returned {len(rows)} albums; expected {len(expected)}: two "
                            f"albums of this artist share the title {twice[0]!r}, and yours merged "
                            "them. Group by the album (its id), not by its title.")
            if len(rows) < len(expected) and set(got_titles) <= set(want_titles):
                raise Wrong(f"{what} returned {len(rows)} albums; {who} has {len(expected)}. Is "
                            "there a LIMIT, or a filter that only Chinook's data satisfies?")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right albums in the wrong order: ORDER BY album_id.")
            if [title for title, _ in rows] == want_titles:
                for (title, names), (_, want) in zip(rows, expected, strict=True):
                    if names != want:
                        same = sorted(names) == sorted(want)
                        raise Wrong(f"{what}: the tracks of {title!r} come as {names[:3]}…; "
                                    f"expected {want[:3]}…, " + (
                                        "the same tracks in track_id order (Album.tracks is "
                                        "ordered that way already)." if same else
                                        "the album's own tracks, ordered by track_id."))
            raise Wrong(f"{what} returned {got_titles[:3]}…; expected {want_titles[:3]}…, the "
                        "albums of that artist by album_id.")
        return ("5 artists (an album without tracks, two albums with one title, an unknown id "
                "included), at most 2 statements each, on SQLite and PostgreSQL.")

    return await on_both("q1", body)


def _from(statement: str) -> str:
    found = re.search(r'\bFROM\s+"?(\w+)', statement, re.IGNORECASE)
    return found[1] if found else statement.split(None, 1)[0].upper()


def _too_many(what: str, statements: list[str], albums: int) -> str:
    """Name the N+1 problem only when the statements show it: one more, alike, per album."""
    if albums >= 2 and len(statements) == albums + 1 and len(set(statements[1:])) == 1:
        return (f"{what} ran {len(statements)} statements for {albums} albums: one for the albums, "
                f"then the same query on `{_from(statements[1])}` once per album. That is the N+1 "
                f"problem (awaitable_attrs in a loop does it too). Ask for all the tracks at once: {Q1_FIX}")
    tables = ", ".join(_from(s) for s in statements[:6]) + ("…" if len(statements) > 6 else "")
    return (f"{what} ran {len(statements)} statements (on {tables}) for {albums} albums; at most "
            "2 are allowed: one for the albums, one for all their tracks. A separate query for "
            "the artist, or for some albums' tracks, goes over. Filter the albums by "
            f"Album.artist_id, and {Q1_FIX}")


q1 = Exercise(
    "q1", "artist_albums", _check_artist_albums, limit=LIMIT,
    hints=["Two statements are enough: one for the albums, one for all their tracks.",
           "`select(Album).where(Album.artist_id == artist_id).order_by(Album.album_id)"
           ".options(selectinload(Album.tracks))`; Album.tracks is already ordered by track_id.",
           "`albums = await session.scalars(stmt)`, then `return [(a.title, [t.name for t in "
           "a.tracks]) for a in albums]`."],
    title="Albums with their tracks, in two statements",
)
