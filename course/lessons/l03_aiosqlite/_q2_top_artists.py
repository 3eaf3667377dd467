"""q2: the top-N artists by number of tracks."""

from __future__ import annotations

import random

from course.checking.checks import Exercise, Wrong
from course.checking.sql_text import number_in
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

from ._common import _database, _rows, _run
from ._watched import _Watched

TOP_ARTISTS_SQL = top_artists_sql("?")
TOP_BY_ID_SQL = top_artists_sql("?", then_by="ar.artist_id")
BY_NAME_ONLY = top_artists_sql("?", group_by="ar.name")
BIND_N = "end the query with `LIMIT ?` and pass `(n,)` in the parameters"


async def _check_top_artists(top_artists) -> str:
    async with _database("check-03-q2") as (db, observer):
        await db.execute("UPDATE artist SET name = ? WHERE artist_id = ?", TIED_RENAME)
        await db.execute("UPDATE artist SET name = ? WHERE artist_id = ?", SAME_NAME)
        await db.commit()
        if (await observer.execute_fetchall(TOP_ARTISTS_SQL, (5,))
                == await observer.execute_fetchall(TOP_BY_ID_SQL, (5,))):
            raise RuntimeError("renaming artist 58 no longer makes name order and id order "
                               "disagree in the top 5: pick another tie")
        tracks_of: dict[str, int] = {  # every artist
            r[0]: r[1] for r in await observer.execute_fetchall(TOP_ARTISTS_SQL, (-1,))}
        for n in (5, 1, 12, 0, random.randint(13, 40), EVERY_ARTIST):
            what = f"top_artists(db, {n})"
            watch = _Watched(db)
            rows = _rows(await _run(top_artists, watch, n), what)
            if n >= 10 and any(number_in(sql, n) for sql, _ in watch.statements):
                raise Wrong(f"{what}: the number {n} is inside the text of your SQL, so n was "
                            "formatted into the query. Never build SQL with f-strings, not even "
                            f"for a number: {BIND_N}.")
            expected = [tuple(r) for r in await observer.execute_fetchall(TOP_ARTISTS_SQL, (n,))]
            if n == EVERY_ARTIST and extra_are_empty(rows, expected):
                rows = rows[:len(expected)]
            if rows == expected:
                if watch.statements and not any("limit" in sql.lower() for sql, _ in watch.statements):
                    raise Wrong(f"{what} sent no LIMIT, so the database sent back every artist. "
                                f"Let it sort and cut, so that only n rows come back: {BIND_N}.")
                continue
            if rows and len(rows[0]) != 2:
                raise Wrong("each row should have two columns: the artist's name and its number "
                            "of tracks.")
            same_name_merged(rows, [tuple(r) for r in await observer.execute_fetchall(
                BY_NAME_ONLY, (n,))], what)
            if len(rows) != len(expected):
                if n == EVERY_ARTIST:
                    no_track_counted_as_one(rows, expected, what)
                    raise Wrong(f"{what} returned {len(rows)} rows; {len(expected)} artists have "
                                "tracks, and there are fewer than n: return each of them once "
                                "(an artist without a track may come last, with 0).")
                raise Wrong(f"{what} returned {len(rows)} rows; expected {n}. Pass n itself "
                            "to `LIMIT ?` (no +1 or -1).")
            i = tie_broken_at(rows, expected, tracks_of)
            if i is not None:
                raise Wrong(f"{what}: row {i + 1} should be {expected[i]}, not {rows[i]}. Both "
                            f"artists have {expected[i][1]} tracks, and ties must be broken by "
                            "name, A before Z: ORDER BY tracks DESC, then the artist's name (not "
                            "its id, and not nothing). (The check renamed Deep Purple 'Purple, "
                            "Deep', so that ids and names sort differently.)")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right artists in the wrong order: most tracks first "
                            "(ORDER BY tracks DESC), then by name.")
            raise Wrong(f"{what} should start with {expected[0]}; yours starts with "
                        f"{rows[0] if rows else 'nothing'}. Count tracks per artist: join track "
                        "to album to artist and GROUP BY the artist.")
    return "Iron Maiden leads with 213 tracks; ties broken by name."


q2 = Exercise(
    "q2", "top_artists", _check_top_artists,
    hints=["Tracks belong to albums and albums to artists: join track → album → artist, then "
           "GROUP BY the artist and count(*).",
           "ORDER BY the count DESC, then by name, so ties come out the same every time.",
           "End with `LIMIT ?` and pass `(n,)`; `rows = await cursor.fetchall()` needs its await "
           "too."],
    title="The top-N artists by number of tracks",
)
