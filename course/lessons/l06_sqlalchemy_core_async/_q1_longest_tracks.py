"""q1: the longest tracks of a genre (bound values, LIMIT, ties broken by name)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine

from course.checking.backends import backend_name, on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong
from course.checking.rows import rows_of
from course.probes import HOSTILE_INPUTS, StatementCounter

from ._common import LIMIT, leaked, reflect, run

# Ties the check makes in Jazz: four tracks become the longest, with the same length; two of
# them get the same name. Name order differs from id order both ways (ascending: M A Z A,
# descending: A Z A M; wanted: A A M Z), and from the order PostgreSQL stores them in, so ties
# broken by anything but the name give another list of rows on both backends. The two twins'
# rows are alike, so whether track_id breaks their tie cannot be seen, and is not judged.
TIE_MS = 3_000_000
TIES = ("Moon River (extended)", "All Blues (extended)", "Zoot Walk (extended)", "All Blues (extended)")
HOSTILE_GENRE = "Rock 'n' Roll"   # genre 5, "Rock And Roll", renamed by the check


async def _make_ties(engine: AsyncEngine, md: MetaData) -> None:
    track, genre = md.tables["track"], md.tables["genre"]
    async with engine.begin() as conn:
        jazz = (await conn.execute(
            select(track.c.track_id).where(track.c.genre_id == 2).order_by(track.c.track_id))).scalars().all()
        chosen = [jazz[0], jazz[len(jazz) // 3], jazz[2 * len(jazz) // 3], jazz[-1]]  # id order
        # the last first: on PostgreSQL they are then stored against id order (A Z A M)
        for track_id, name in reversed(list(zip(chosen, TIES, strict=True))):
            await conn.execute(track.update().where(track.c.track_id == track_id)
                               .values(name=name, milliseconds=TIE_MS))
        await conn.execute(genre.update().where(genre.c.genre_id == 5).values(name=HOSTILE_GENRE))


def _reference_q1(md: MetaData, genre_name: str, n: int) -> Any:
    track, genre = md.tables["track"], md.tables["genre"]
    return (select(track.c.name, track.c.milliseconds)
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name == genre_name)
            .order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id)
            .limit(n))


Q1_CASES = [("Jazz", 3), ("Jazz", 1), (HOSTILE_GENRE, 4), ("Rock", 12), ("Opera", 5), ("Jazz", 0),
            ("", 3), ("No such genre", 2)]


async def _check_longest_tracks(longest_tracks) -> str:
    async def cases(engine: AsyncEngine, backend: str) -> None:
        md = await reflect(engine)
        await _make_ties(engine, md)
        await _longest_cases(engine, md, longest_tracks, backend)

    await on_each_backend("check_06_q1", cases)
    return ("bound genre and LIMIT, longest first, ties broken by name (seen on four tied tracks "
            "whose ids and stored order are not name order), the same code on SQLite and PostgreSQL.")


async def _longest_cases(engine: AsyncEngine, md: MetaData, longest_tracks, backend: str) -> None:
    texts: dict[str, set[str]] = {}  # genre -> the LIMIT statements sent for it, whatever n
    for genre_name, n in Q1_CASES + [(h, 5) for h in HOSTILE_INPUTS]:
        what = f"longest_tracks(conn, {genre_name!r}, {n})"
        async with engine.connect() as conn:
            expected = [tuple(r) for r in (await conn.execute(_reference_q1(md, genre_name, n))).all()]
        with StatementCounter(engine) as counter:
            async with engine.connect() as conn:
                try:
                    got = await run(longest_tracks, conn, genre_name, n)
                except LearnerError as exc:
                    if genre_name in (HOSTILE_GENRE, *HOSTILE_INPUTS):
                        raise Wrong(f"the genre {genre_name!r} broke your query ({exc}): it became "
                                    "part of the SQL. Bind it: `genre.c.name == name` in select(), "
                                    "or `:name` in text() with the value in the parameters.") from None
                    raise
        leaked(engine, "longest_tracks")
        quoted = [s for s in counter.statements if len(genre_name) > 2 and genre_name in s]
        if quoted:
            raise Wrong(f"the genre name {genre_name!r} is inside your SQL text (an f-string, in "
                        "text() or not). Bind it as a parameter: `genre.c.name == name` in select(), "
                        "or `:name` in text().")
        if len(counter.statements) > 2:
            raise Wrong(f"{what} ran {len(counter.statements)} statements; one SELECT with a join "
                        "(or at most two) does it.")
        if n > 0 and not any("LIMIT" in s.upper() for s in counter.statements):
            raise Wrong(f"{what} fetched the whole genre and cut it in Python: let the database "
                        "cut with `.limit(n)` (or `LIMIT :n` in text()), so only n rows travel.")
        if literal := [s for s in counter.statements if re.search(r"\bLIMIT\s+\d", s, re.IGNORECASE)]:
            found = re.search(r"\bLIMIT\s+\d+", literal[0], re.IGNORECASE)
            raise Wrong(f"{what} sent `{found[0] if found else 'LIMIT'}`: the number is written inside "
                        "the SQL text, so every n makes a new statement. Bind it: `.limit(n)` in "
                        "select(), or `LIMIT :n` in text().")
        texts.setdefault(genre_name, set()).update(s for s in counter.statements if "LIMIT" in s.upper())
        rows = rows_of(got, what, "`result.all()`", width=2)
        if rows == expected:
            continue
        if rows and not expected and n > 0:
            raise Wrong(f"{what} returned {len(rows)} rows on {backend_name(backend)}, but no genre is "
                        f"called exactly {genre_name!r}: expected none. Compare the whole name "
                        "with `genre.c.name == name` (LIKE reads % and _ as patterns; an empty "
                        "name must match nothing).")
        if len(rows) != len(expected):
            if not any("LIMIT" in s.upper() for s in counter.statements):
                raise Wrong(f"{what} sent no LIMIT and returned {len(rows)} rows on {backend_name(backend)}; "
                            f"expected {len(expected)}. Pass n to `.limit(n)` as it is: LIMIT 0 "
                            "means no rows, while `.limit(None)` (or `n or None`) means no limit.")
            raise Wrong(f"{what} returned {len(rows)} rows on {backend_name(backend)}; expected "
                        f"{len(expected)}. Likely: the LIMIT got another number than n (n + 1, "
                        "n - 1), or rows were cut or added in Python. Pass n itself to `.limit(n)`.")
        if [ms for _, ms in rows] == [ms for _, ms in expected]:
            raise Wrong(f"{what} on {backend_name(backend)}: ties are broken another way. The check gave "
                        f"four Jazz tracks the same length ({TIE_MS} ms); yours come back as "
                        f"{[name for name, _ in rows]}, expected {[name for name, _ in expected]}. "
                        "Order by milliseconds DESC, then name (then track_id, so the order is "
                        "total): `.order_by(track.c.milliseconds.desc(), track.c.name, "
                        "track.c.track_id)`.")
        if sorted(rows) == sorted(expected):
            raise Wrong(f"{what} has the right tracks in the wrong order: longest first "
                        "(milliseconds DESC).")
        raise Wrong(f"{what} should start with {expected[0] if expected else 'nothing'}; yours "
                    f"starts with {rows[0] if rows else 'nothing'}. Join track to genre and keep "
                    "the genre's tracks only.")
    for genre_name, limits in texts.items():
        if len(limits) > 1:
            raise Wrong(f"for the genre {genre_name!r}, your SQL text changed from one n to "
                        "another: n, or something computed from it, is written inside the SQL. "
                        "Bind it: `.limit(n)` in select(), or `LIMIT :n` in text().")


q1 = Exercise(
    "q1", "longest_tracks", _check_longest_tracks,
    hints=["A track knows its genre only by genre_id: join the track table to the genre table, "
           "so that one SELECT can filter on the genre's name; then let the database sort and cut.",
           "`select(track.c.name, track.c.milliseconds).join(genre, genre.c.genre_id == "
           "track.c.genre_id)`, filtered with `.where(genre.c.name == name)` (the comparison binds "
           "the value), then `.order_by(track.c.milliseconds.desc(), track.c.name, "
           "track.c.track_id).limit(n)`.",
           "`return [tuple(row) for row in (await conn.execute(stmt)).all()]`, or simply "
           "`(await conn.execute(stmt)).all()`: Row objects are tuples."],
    limit=LIMIT, title="The longest tracks of a genre",
)
