"""q2: the top-N artists by number of tracks."""

from __future__ import annotations

import random
import re

import asyncpg

from course.checking.checks import Exercise, Wrong
from course.checking.pg_copies import connected_copy
from course.checking.top_n import (
    EVERY_ARTIST,
    SAME_NAME,
    TIED_RENAME,
    extra_are_empty,
    no_track_counted_as_one,
    same_name_merged,
    tie_broken_at,
    top_artists_sql,
)

from ._common import _logged, _rows

TOP_ARTISTS_SQL = top_artists_sql("$1")
TOP_BY_ID_SQL = top_artists_sql("$1", then_by="ar.artist_id")
BY_NAME_ONLY = top_artists_sql("$1", group_by="ar.name")
RENAME_TIED_ARTIST = "UPDATE artist SET name = $1 WHERE artist_id = $2 AND name = 'Deep Purple'"
TIED = ("Lost", TIED_RENAME[0])  # 92 tracks each: by name Lost comes first, by id Purple, Deep
SAME_NAME_SQL = "UPDATE artist SET name = $1 WHERE artist_id = $2"
# What cuts the rows in the database: LIMIT n (not LIMIT ALL), or the SQL standard's
# FETCH FIRST / FETCH NEXT n ROWS ONLY.
CUTS_ROWS = re.compile(r"\blimit\s+(?!all\b)|\bfetch\s+(first|next)\b", re.IGNORECASE)


async def _check_top_artists(top_artists) -> str:
    async with connected_copy("check_04_q2") as (conn,):
        await _rename_tied_artist(conn)
        await conn.execute(SAME_NAME_SQL, *SAME_NAME)
        return await _top_artists_cases(conn, top_artists)


async def _rename_tied_artist(conn: asyncpg.Connection) -> None:
    """Make name order and id order disagree on the tie at fifth place, and prove they do."""
    if await conn.execute(RENAME_TIED_ARTIST, *TIED_RENAME) != "UPDATE 1":
        raise RuntimeError("artist 58 is not Deep Purple in this copy of Chinook")
    by_name = [tuple(r) for r in await conn.fetch(TOP_ARTISTS_SQL, 6)]
    by_id = [tuple(r) for r in await conn.fetch(TOP_BY_ID_SQL, 6)]
    if [name for name, _ in by_name[4:]] != list(TIED) or by_id[4][0] != TIED[1]:
        raise RuntimeError(f"the renamed tie is not where the check expects it: {by_name[4:]}")


def _tie_at(rows: list[tuple], expected: list[tuple], i: int) -> str:
    """Describe the tie the learner's row i breaks differently from the expected one."""
    mine, want = rows[i], expected[i]
    tied = sorted({name for name, tracks in rows + expected if tracks == want[1]})
    return (f"{' and '.join(repr(name) for name in tied)} both have {want[1]} tracks, and "
            f"{want[0]!r} comes first by name; you put {mine[0]!r} there")


async def _top_artists_cases(conn: asyncpg.Connection, top_artists) -> str:
    texts: set[str] = set()
    tracks_of = dict(await conn.fetch(TOP_ARTISTS_SQL, None))  # LIMIT NULL: every artist
    for n in (5, 1, 12, 0, random.randint(13, 40), EVERY_ARTIST):
        what = f"top_artists(conn, {n})"
        got, queries = await _logged(conn, top_artists, n)
        rows = _rows(got, what)
        texts.update(queries)
        expected = [tuple(r) for r in await conn.fetch(TOP_ARTISTS_SQL, n)]
        if n == EVERY_ARTIST and extra_are_empty(rows, expected):
            rows = rows[:len(expected)]
        if rows == expected:
            if queries and not any(CUTS_ROWS.search(q) for q in queries):
                raise Wrong(f"the SQL that {what} sent has no LIMIT (nor FETCH FIRST … ROWS "
                            "ONLY), so nothing in it cuts the list at n rows: the database sends "
                            "back every artist for your code to cut. Let the database sort and "
                            "cut, so that only n rows come back: `LIMIT $1`, with n as the "
                            "argument.")
            names = [list(r.keys()) for r in got[:1] if isinstance(r, asyncpg.Record)]
            if names and names[0] != ["name", "tracks"]:
                raise Wrong(f"{what} returned columns named {names[0]}; name them `name` and "
                            "`tracks` (`count(*) AS tracks`), so that row['tracks'] works.")
            continue
        if rows and len(rows[0]) != 2:
            raise Wrong("each row should have two columns: the artist's name and its number "
                        "of tracks.")
        same_name_merged(rows, [tuple(r) for r in await conn.fetch(BY_NAME_ONLY, n)], what)
        if len(rows) != len(expected):
            if n == EVERY_ARTIST:
                no_track_counted_as_one(rows, expected, what)
                raise Wrong(f"{what} returned {len(rows)} rows; {len(expected)} artists have "
                            "tracks, and there are fewer than n: return each of them once (an "
                            "artist without a track may come last, with 0).")
            raise Wrong(f"top_artists(conn, {n}) returned {len(rows)} rows; expected {n} rows "
                        f"for n={n}. Pass n itself to LIMIT $1 (no +1 or -1).")
        i = tie_broken_at(rows, expected, tracks_of)
        if i is not None:
            raise Wrong(f"top_artists(conn, {n}) breaks ties another way: {_tie_at(rows, expected, i)}. "
                        "Ties are broken by name: ORDER BY tracks DESC, name. (The check renamed "
                        "Deep Purple 'Purple, Deep', so that ids and names sort differently.)")
        if sorted(rows) == sorted(expected):
            raise Wrong(f"top_artists(conn, {n}) has the right artists in the wrong order: most "
                        "tracks first (ORDER BY tracks DESC), then by name.")
        raise Wrong(f"top_artists(conn, {n}) should start with {expected[0]}; yours starts with "
                    f"{rows[0] if rows else 'nothing'}. Count tracks per artist: join track to "
                    "album to artist and GROUP BY the artist.")
    if len(texts) > 1:
        raise Wrong("your SQL text changes with n: the number is inside the SQL. Bind it "
                    "instead: `LIMIT $1`, with n as the argument.")
    return "Iron Maiden leads with 213 tracks; ties broken by name."


q2 = Exercise(
    "q2", "top_artists", _check_top_artists,
    hints=["Tracks belong to albums and albums to artists: join track → album → artist, then "
           "GROUP BY the artist and count(*).",
           "ORDER BY the count DESC, then by name, so ties come out the same every time.",
           "LIMIT $1 and pass n as the argument: `await conn.fetch(sql, n)`."],
    title="The top-N artists by number of tracks",
)
