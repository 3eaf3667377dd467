"""Checks for exercises/00-welcome-workbook.ipynb."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

from course.checking.checks import Exercise, Wrong, call
from course.db.sqlite import fresh_sqlite
from course.deadline import not_counted
from course.probes import InFlight

# --- q1: format a track length -----------------------------------------------------------

# 5000 comes second: lesson 00 shows an unpadded answer failing on it.
MMSS_CASES = [(343719, "5:43"), (5000, "0:05"), (0, "0:00"), (999, "0:00"), (1000, "0:01"),
              (59999, "0:59"), (60000, "1:00"), (3_600_000, "60:00"), (5_286_953, "88:06")]


def _mmss_hint(ms: int, got: str) -> str:
    """A pointer to the likely slip when `got` matches a known wrong way to format `ms`."""
    seconds = round(ms / 1000)
    whole = ms // 1000
    minutes, rest = divmod(whole, 60)
    if got == f"{minutes}:{rest}":
        return " Pad the seconds to two digits, e.g. f'{s:02d}'."
    if got == f"{seconds // 60}:{seconds % 60:02d}":
        return " Drop the partial second instead of rounding it (use //)."
    if got == f"{minutes:02d}:{rest:02d}":
        return " Pad only the seconds: a player shows '5:43', not '05:43'."
    if minutes >= 60 and got in (f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}",
                                 f"{minutes // 60:02d}:{minutes % 60:02d}:{rest:02d}"):
        return " Keep counting minutes past 59: the statement asks for minutes and seconds only."
    if minutes >= 60 and got in (f"{minutes % 60}:{rest:02d}", f"{minutes % 60:02d}:{rest:02d}"):
        return (" The minutes wrapped around at 60, as time.strftime's %M does: let them keep "
                "counting, e.g. with divmod(milliseconds // 1000, 60).")
    return ""


async def _check_mmss(mmss) -> str:
    for ms, expected in MMSS_CASES:
        got = await call(mmss, ms)
        if not isinstance(got, str):
            raise Wrong(f"mmss({ms}) should return a str like '{expected}', not {type(got).__name__}.")
        if got != expected:
            raise Wrong(f"mmss({ms}) returned {got!r}; expected {expected!r}.{_mmss_hint(ms, got)}")
    return (f"{len(MMSS_CASES)} lengths formatted, from 0:00 and 999 ms (0:00) to 60:00 "
            "and 88:06.")


q1 = Exercise(
    "q1", "mmss", _check_mmss,
    hints=["A minute is 60 000 milliseconds; `//` and `%` split a number into whole parts and a rest.",
           "Seconds are `milliseconds // 1000`; then `divmod(seconds, 60)` gives minutes and seconds.",
           "Format with an f-string and pad the seconds: f\"{minutes}:{seconds:02d}\"."],
    title="Format a track length as m:ss",
)


# --- q2: await an async lookup ----------------------------------------------------------

LENGTHS = {1: 343719, 2: 342562, 3: 230619, 6: 233926}
# ids with gaps, one track, none, and a track listed three times (it counts each time)
TOTAL_CASES = [[1, 2, 3, 6], [6], [], [3, 1, 3, 3]]


async def _check_total(total_length) -> str:
    probe = InFlight()

    @probe.track
    async def get_milliseconds(track_id: int) -> int:
        await asyncio.sleep(0)  # a real lookup would wait on the database here
        return LENGTHS[track_id]

    for ids in TOTAL_CASES:
        got = await call(total_length, ids, get_milliseconds)
        expected = sum(LENGTHS[i] for i in ids)
        if got == sum(LENGTHS[i] for i in set(ids)) != expected:
            raise Wrong(f"total_length({ids}, ...) returned {got!r}, the total of the distinct "
                        f"tracks; expected {expected}. A track listed twice counts twice, like a "
                        "song queued twice: add a length for every entry of track_ids, not for "
                        "set(track_ids) or the keys of a dict.")
        if got != expected:
            raise Wrong(f"total_length({ids}, ...) returned {got!r}; expected {expected}.")
        if not isinstance(got, int) or isinstance(got, bool):
            raise Wrong(f"total_length({ids}, ...) returned {got!r}, a {type(got).__name__}; "
                        "the lengths are ints, so their total is an int: start the sum at 0.")
    listed = sum(len(ids) for ids in TOTAL_CASES)
    if probe.started > listed:
        raise Wrong(f"get_milliseconds was called {probe.started} times for {listed} tracks "
                    "listed in all. Each call is a trip to the database: call it at most once "
                    "per entry of track_ids.")
    return (f"{len(TOTAL_CASES)} lists added up, including an empty one and a repeated track; "
            f"{probe.started} lookups for {listed} entries.")


q2 = Exercise(
    "q2", "total_length", _check_total,
    hints=["`get_milliseconds` is an async function: calling it gives a coroutine; `await` gives the number.",
           "Loop over track_ids, repeats included, and add up `await get_milliseconds(track_id)`.",
           "An empty list of tracks lasts 0 milliseconds."],
    title="Add up lengths from an async lookup",
)


# --- q3: a first query ------------------------------------------------------------------

TOP_GENRES = [("Rock", 1297), ("Latin", 579), ("Metal", 374), ("Alternative & Punk", 332), ("Jazz", 130)]
# Tracks the check adds so that four genres tie at 374 tracks, across the LIMIT. Their
# genre_id order (Metal 3, A&P 4, Blues 6, Classical 24) is neither their name order nor its reverse.
TIE_EXTRA = {4: 42, 6: 293, 24: 300}
TIED = ["Alternative & Punk", "Blues", "Classical", "Metal"]
TIED_BY_ID = ["Metal", "Alternative & Punk", "Blues", "Classical"]
TIED_GENRES = [("Rock", 1297), ("Latin", 579), *((name, 374) for name in TIED[:3])]


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    except sqlite3.Error as exc:
        raise Wrong(f"SQLite could not run your query: {exc}.") from None


def _judge_shape(got: list[tuple], expected: list[tuple]) -> None:
    """Reject a result with the wrong number of rows or columns, or counts that are not ints."""
    if len(got) != len(expected):
        raise Wrong(f"expected {len(expected)} rows, got {len(got)}. Check your LIMIT.")
    if any(len(row) != 2 for row in got):
        raise Wrong("each row should have two columns: the genre's name and its number of tracks.")
    if all(isinstance(a, int) and isinstance(b, str) for a, b in got):
        raise Wrong("the columns are swapped: the genre's name first, then its number of tracks.")
    if not all(isinstance(n, int) for _, n in got):
        raise Wrong(f"the number of tracks should be an integer, as COUNT(*) gives; yours is "
                    f"{got[0][1]!r}.")


def _tie_order(got: list[tuple]) -> str:
    """Name the order the tied genres came out in, as far as the rows show it."""
    seen = [name for name, n in got if n == 374]
    if seen == TIED_BY_ID[:len(seen)]:
        return "that is the order of their genre_id: a tie-break by id, or none at all"
    if seen == sorted(TIED, reverse=True)[:len(seen)]:
        return ("that is by name from Z to A: a DESC on the name too, or no tie-break at all "
                "(SQL returns tied rows in any order it likes)")
    return "that is not by name"


def _add_ties(conn: sqlite3.Connection) -> None:
    for genre_id, extra in TIE_EXTRA.items():
        conn.executemany(
            "INSERT INTO track (name, album_id, media_type_id, genre_id, milliseconds, unit_price) "
            "VALUES (?, 1, 1, ?, 1000, 0.99)",
            [(f"tie {genre_id}-{i}", genre_id) for i in range(extra)])
    conn.commit()


async def _check_top_genres(top_genres_sql) -> str:
    sql = await call(top_genres_sql)
    if not isinstance(sql, str) or not sql.strip():
        raise Wrong("top_genres_sql() should return the text of a SELECT statement.")
    async with not_counted():
        path = fresh_sqlite("check-00-q3")
    try:
        with closing(sqlite3.connect(path)) as conn:
            got = _rows(conn, sql)
            if got != TOP_GENRES:
                _judge_shape(got, TOP_GENRES)
                if sorted(got, key=lambda r: r[1], reverse=True) == TOP_GENRES:
                    raise Wrong("the right genres, in the wrong order: most tracks first "
                                "(ORDER BY ... DESC).")
                pairs = enumerate(zip(got, TOP_GENRES, strict=True))
                i = next(i for i, (mine, want) in pairs if mine != want)
                count_hint = " Count every track of the genre: COUNT(*)." if got[i][0] == TOP_GENRES[i][0] else ""
                raise Wrong(f"row {i + 1} should be {TOP_GENRES[i]}; yours is {got[i]}.{count_hint}")
            _add_ties(conn)
            got = _rows(conn, sql)
    finally:
        path.unlink(missing_ok=True)
    if got != TIED_GENRES:
        _judge_shape(got, TIED_GENRES)
        if [n for _, n in got] != [n for _, n in TIED_GENRES]:
            raise Wrong(f"with tracks added so that four genres tie at 374 tracks, your query "
                        f"returned {got}; expected {TIED_GENRES}.")
        wanted = ", ".join(name for name, _ in TIED_GENRES[2:])
        seen = ", ".join(name for name, n in got if n == 374)
        raise Wrong(f"with tracks added so that {', '.join(TIED)} all have 374 tracks, genres "
                    f"with the same count came out in another order than by name: {seen}; "
                    f"{_tie_order(got)}. Expected {wanted}. Add the name as a second sort key: "
                    "ORDER BY tracks DESC, name.")
    return ("Rock leads with 1297 tracks; with four genres tied at 374 tracks, the ties came "
            "out by name.")


q3 = Exercise(
    "q3", "top_genres_sql", _check_top_genres,
    hints=["Join track to genre on genre_id, then GROUP BY the genre.",
           "COUNT(*) per group counts the tracks; ORDER BY that count DESC, then by name.",
           "LIMIT 5 keeps the top five."],
    title="The five genres with the most tracks",
)
