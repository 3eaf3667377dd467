"""q1: a search that survives any input."""

from __future__ import annotations

import random

import aiosqlite

from course.checking.checks import Exercise, LearnerError, Wrong
from course.probes import HOSTILE_INPUTS

from ._common import _database, _pasted_into_sql, _rows, _run
from ._watched import _Watched

SEARCH_SQL = """
    SELECT track_id, name FROM track
    WHERE instr(lower(name), lower(?)) > 0
    ORDER BY track_id
"""
# Four track names hold a backslash ("Cavalleria Rusticana \ Act \ Intermezzo Sinfonico"). With
# `ESCAPE '\'`, a backslash left unescaped in the text escapes the character after it instead.
SEARCH_CASES = ["love", "LOVE", "don't", *HOSTILE_INPUTS, "100%", "Act \\ Intermezzo", " ", "Love ", ""]
# A covering index on (name, track_id): a query without ORDER BY then returns rows in name
# order, not in the track_id order a plain table scan happens to give.
NAME_ORDER_INDEX = "CREATE INDEX check_track_name ON track (name, track_id)"


async def _random_search(observer: aiosqlite.Connection) -> str:
    """A piece of a random track name, in a random case: a search beyond the fixed cases. ASCII
    only, since the statement asks for ASCII case only."""
    rows = await observer.execute_fetchall("SELECT name FROM track ORDER BY random() LIMIT 50")
    names = [r[0] for r in rows if r[0].isascii() and len(r[0]) >= 6]
    name = names[0] if names else "Breaking The Rules"
    start = random.randrange(0, len(name) - 4)
    piece = name[start:start + random.randint(4, min(10, len(name) - start))]
    return "".join(c.upper() if random.random() < 0.5 else c.lower() for c in piece)
BIND_TEXT = "write `?` in the SQL and pass the text in the parameters, `await db.execute(sql, (pattern,))`"


async def _check_search_tracks(search_tracks) -> str:
    async with _database("check-03-q1") as (db, observer):
        await db.execute(NAME_ORDER_INDEX)
        await db.commit()
        for text in [*SEARCH_CASES, await _random_search(observer)]:
            what = f"search_tracks(db, {text!r})"
            watch = _Watched(db)
            try:
                got = await _run(search_tracks, watch, text)
            except LearnerError as exc:
                if watch.pasted(text):
                    raise _pasted_into_sql(what, text, BIND_TEXT) from None
                if "'" in text:
                    raise Wrong(f"the quote in {text!r} broke your query ({exc}): the text "
                                "became part of the SQL. Never build SQL with f-strings; write "
                                "`LIKE ?` and pass the text in the parameters.") from None
                raise
            if watch.pasted(text):
                raise _pasted_into_sql(what, text, BIND_TEXT)
            rows = _rows(got, what)
            expected = [tuple(r) for r in await observer.execute_fetchall(SEARCH_SQL, (text,))]
            if await observer.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE name = 'track'") == []:
                raise Wrong(f"{what} dropped the track table: the text ran as SQL. Bind it as a "
                            "parameter (`?`) instead of formatting it into the query.")
            if rows == expected:
                continue
            if text == "" and not rows:
                raise Wrong(f"{what} returned no tracks; every name contains the empty text, so "
                            f"expected all {len(expected)}. Search for the text as it is given, "
                            "even empty (`if not text: return []` tests truthiness).")
            if rows and len(rows[0]) != 2:
                raise Wrong(f"each row should have 2 columns (track_id, name); yours have "
                            f"{len(rows[0])}.")
            if ("%" in text or "_" in text) and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks, but only {len(expected)} track "
                            f"name(s) contain {text!r}: % and _ are LIKE wildcards. Escape them in the "
                            "text (`\\%`, `\\_`) and add `ESCAPE '\\'`, or use instr().")
            if "\\" in text:
                raise Wrong(f"{what} returned {len(rows)} tracks; expected {len(expected)}, "
                            f"starting with {expected[0]}. With `ESCAPE '\\'`, the backslash is "
                            "the escape character: a backslash typed by the user escapes the "
                            "character after it. Escape it first (`\\` becomes `\\\\`), then "
                            "`%` and `_`; or use instr().")
            if "'" in text and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks instead of {len(expected)}: the "
                            "text with its quote did not stay one plain value. If it went into the "
                            "SQL, even escaped, the input can rewrite the query (SQL injection): "
                            "bind it with `?` and pass it in the parameters.")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right tracks in the wrong order: ORDER BY track_id.")
            if text != text.strip() and rows == [tuple(r) for r in await observer.execute_fetchall(
                    SEARCH_SQL, (text.strip(),))]:
                raise Wrong(f"{what} returned {len(rows)} tracks, those that contain "
                            f"{text.strip()!r}; expected the {len(expected)} that contain "
                            f"{text!r}, spaces included. Search for the text as it is given: "
                            "don't strip() it.")
            if set(rows) < set(expected) and all(text in str(r[1]) for r in rows):
                raise Wrong(f"{what} returned only the {len(rows)} names that match its case; "
                            f"expected {len(expected)}: the search must ignore case. LIKE already "
                            "does (for ASCII); with instr(), compare lower(name) with lower(?).")
            raise Wrong(f"{what} returned {len(rows)} tracks; expected {len(expected)}"
                        + (f", starting with {expected[0]}." if expected else "."))
    return (f"{len(SEARCH_CASES) + 1} searches (a random one and spaces included), hostile ones "
            "too, all treated as plain text.")


q1 = Exercise(
    "q1", "search_tracks", _check_search_tracks,
    hints=["Put a `?` where the text goes and pass the value separately: "
           "`await db.execute(sql, (pattern,))`. Then quotes are just characters.",
           "For 'contains', the pattern is '%' + text + '%'. But a % or _ typed by the user is a "
           "wildcard too: replace `\\` by `\\\\`, `%` by `\\%` and `_` by `\\_` first, and end "
           "the SQL with `LIKE ? ESCAPE '\\'`.",
           "`SELECT track_id, name FROM track WHERE name LIKE ? ESCAPE '\\' ORDER BY track_id`, "
           "then `return await cursor.fetchall()` (or use `await db.execute_fetchall(sql, "
           "params)`). LIKE ignores ASCII case."],
    title="Search track names, safely",
)
