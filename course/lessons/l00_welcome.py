"""Checks for exercises/00-welcome-workbook.ipynb."""

from __future__ import annotations

import sqlite3

from course.checks import Exercise, Wrong, call
from course.probes import InFlight
from course.sqlite import fresh_sqlite

# --- q1: format a track length -----------------------------------------------------------

MMSS_CASES = [(343719, "5:43"), (5000, "0:05"), (59999, "0:59"), (60000, "1:00"), (0, "0:00"),
              (3_600_000, "60:00")]


def _rounded(ms: int) -> str:
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}:{seconds:02d}"


async def _check_mmss(mmss) -> str:
    for ms, expected in MMSS_CASES:
        got = await call(mmss, ms)
        if not isinstance(got, str):
            raise Wrong(f"mmss({ms}) should return a str like '{expected}', not {type(got).__name__}.")
        if got != expected:
            hint = ""
            if ms == 5000 and got.endswith(":5"):
                hint = " Pad the seconds to two digits, e.g. f'{s:02d}'."
            elif got == _rounded(ms):
                hint = " Drop the partial second instead of rounding it (use //)."
            raise Wrong(f"mmss({ms}) returned {got!r}; expected {expected!r}.{hint}")
    return f"{len(MMSS_CASES)} lengths formatted, including 0:05 and 60:00."


q1 = Exercise(
    "00", "q1", "mmss", _check_mmss,
    hints=["A minute is 60 000 milliseconds; `//` and `%` split a number into whole parts and a rest.",
           "Seconds are `milliseconds // 1000`; then `divmod(seconds, 60)` gives minutes and seconds.",
           "Format with an f-string and pad the seconds: f\"{minutes}:{seconds:02d}\"."],
    title="Format a track length as m:ss",
)


# --- q2: await an async lookup ----------------------------------------------------------

LENGTHS = {1: 343719, 2: 342562, 3: 230619, 6: 233926}


async def _check_total(total_length) -> str:
    probe = InFlight()

    @probe.track
    async def get_milliseconds(track_id: int) -> int:
        import asyncio

        await asyncio.sleep(0)  # a real lookup would wait on the database here
        return LENGTHS[track_id]

    for ids in ([1, 2, 3, 6], [6], []):
        got = await call(total_length, ids, get_milliseconds)
        expected = sum(LENGTHS[i] for i in ids)
        if got != expected:
            raise Wrong(f"total_length({ids}, ...) returned {got!r}; expected {expected}.")
    if probe.finished != 5:
        raise Wrong(f"get_milliseconds should be awaited once per track (5 times in all); it ran "
                    f"{probe.finished} times.")
    return "every lookup awaited once."


q2 = Exercise(
    "00", "q2", "total_length", _check_total,
    hints=["`get_milliseconds` is an async function: calling it gives a coroutine; `await` gives the number.",
           "Loop over track_ids and add up `await get_milliseconds(track_id)`.",
           "An empty list of tracks lasts 0 milliseconds."],
    title="Add up lengths from an async lookup",
)


# --- q3: a first query ------------------------------------------------------------------

TOP_GENRES = [("Rock", 1297), ("Latin", 579), ("Metal", 374), ("Alternative & Punk", 332), ("Jazz", 130)]


async def _check_top_genres(top_genres_sql) -> str:
    sql = await call(top_genres_sql)
    if not isinstance(sql, str) or not sql.strip():
        raise Wrong("top_genres_sql() should return the text of a SELECT statement.")
    path = fresh_sqlite("check-00-q3")
    with sqlite3.connect(path) as conn:
        try:
            got = [tuple(r) for r in conn.execute(sql).fetchall()]
        except sqlite3.Error as exc:
            raise Wrong(f"SQLite could not run your query: {exc}.") from None
    conn.close()
    if got == TOP_GENRES:
        return "Rock leads with 1297 tracks."
    if len(got) != len(TOP_GENRES):
        raise Wrong(f"expected {len(TOP_GENRES)} rows, got {len(got)}. Check your LIMIT.")
    if got and len(got[0]) != 2:
        raise Wrong("each row should have two columns: the genre's name and its number of tracks.")
    if sorted(got, key=lambda r: r[1], reverse=True) == TOP_GENRES:
        raise Wrong("the right genres, in the wrong order: most tracks first (ORDER BY ... DESC).")
    raise Wrong(f"the first row should be {TOP_GENRES[0]}; yours is {got[0]}.")


q3 = Exercise(
    "00", "q3", "top_genres_sql", _check_top_genres,
    hints=["Join track to genre on genre_id, then GROUP BY the genre.",
           "COUNT(*) per group counts the tracks; ORDER BY that count DESC, then by name.",
           "LIMIT 5 keeps the top five."],
    title="The five genres with the most tracks",
)
