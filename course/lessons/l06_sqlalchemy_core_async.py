"""Checks for exercises/06-sqlalchemy-core-async-workbook.ipynb.

Every exercise whose statement names no backend is checked on SQLite, then on PostgreSQL: each
check makes a fresh Chinook database for each backend before it calls the learner's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import hashlib
import re
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Numeric, Table, event, func, insert, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

from course import synthetic
from course.checking.checks import FORGOT_AWAIT, Exercise, LearnerError, Wrong, call, must_raise
from course.checking.quiet import quiet_wrong
from course.db.engines import BACKENDS, fresh_engine_url
from course.db.postgres import PgDatabase, drop_postgres
from course.probes import (
    HOSTILE_INPUTS,
    ConnectionLeaks,
    InjectedFailure,
    ListThatBreaks,
    StatementCounter,
    checked_out,
)

LIMIT = 90.0  # generous: two fresh databases per check, on a machine that may be busy

# --- shared plumbing ----------------------------------------------------------------------

# A sync driver on the event loop's thread is seen directly: sqlite3.connect() raises an audit
# event in the thread that calls it. aiosqlite calls it from its own worker thread, so only a
# sync engine (or sqlite3 itself) used inside async code shows up here.
_watched_threads: set[int] = set()
_sync_connects: list[str] = []
_hook_installed = False


def _audit(event_name: str, args: tuple) -> None:
    if event_name == "sqlite3.connect" and threading.get_ident() in _watched_threads:
        _sync_connects.append(str(args[0]) if args else "")


SYNC_DRIVER = ("your code opened a sync sqlite3 connection on the event loop's thread (a sync "
               "engine from create_engine(), or sqlite3 itself): every query then blocks the loop "
               "and every other task waits. Use the AsyncConnection or AsyncEngine you are given, "
               "or create_async_engine() with an async driver (sqlite+aiosqlite, postgresql+asyncpg).")


def _never_closed(count: int, failure: LearnerError | None = None) -> str:
    when = "returned" if failure is None else f"raised {type(failure.__cause__).__name__}"
    return (f"{count} connection(s) your code opened were never closed: they were still checked "
            f"out of the pool when your function {when} (the check closed them). Use `async with "
            "engine.connect() as conn:` (or `engine.begin()`), which gives the connection back "
            "to the pool even on error; connections nobody closes run the pool dry.")


async def run(fn: Any, *args: Any) -> Any:
    """call() the learner's function, watching for a sync driver and for connections it never
    closed (closed here, quietly), and translating the usual async mistakes of SQLAlchemy into
    plain words."""
    try:
        return await _watched(fn, *args)
    except Wrong as exc:
        raise quiet_wrong(exc) from None


async def _watched(fn: Any, *args: Any) -> Any:
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed: it only looks at watched threads
        _hook_installed = True
    me = threading.get_ident()
    seen = len(_sync_connects)
    leaks = ConnectionLeaks()
    _watched_threads.add(me)
    failure: LearnerError | None = None
    try:
        with leaks:
            result = await call(fn, *args)
    except LearnerError as exc:
        failure = exc
    finally:
        _watched_threads.discard(me)
        left = await leaks.settle()
        if len(_sync_connects) > seen:
            raise Wrong(SYNC_DRIVER)
    if left:  # on an error too: a connection opened without `async with` stays out
        raise Wrong(_never_closed(left, failure))
    if failure is not None:
        if (plain := _translated(failure)) is not failure:
            raise plain from None
        raise failure
    return result


def _translated(exc: LearnerError) -> Exception:
    """A plain-words Wrong for the usual async mistakes of SQLAlchemy, or the error itself."""
    cause = exc.__cause__
    if isinstance(cause, TypeError | AttributeError) and (
            "coroutine" in str(cause) or "GeneratorStartableContext" in str(cause)):
        return Wrong(FORGOT_AWAIT)
    if isinstance(cause, MissingGreenlet) or (
            isinstance(cause, StatementError) and isinstance(cause.orig, MissingGreenlet)):
        return Wrong("MissingGreenlet: a sync engine (create_engine) was given an async driver's "
                     "URL, so it cannot await. Use create_async_engine(url), and `async with "
                     "engine.connect()` or `engine.begin()` around `await conn.execute(...)`.")
    if isinstance(cause, ModuleNotFoundError) and "psycopg" in str(cause):
        return Wrong("`postgresql://` means the psycopg driver in SQLAlchemy 2.1, which the course "
                     "does not install: keep the URL's `postgresql+asyncpg` driver (pass the URL "
                     "object you were given, unchanged).")
    return exc


@contextlib.asynccontextmanager
async def fresh_engine(name: str, backend: str, **options: Any) -> AsyncIterator[AsyncEngine]:
    """A fresh Chinook database on `backend` and an engine on it, both gone afterwards."""
    url = await fresh_engine_url(name, backend)
    engine = create_async_engine(url, **options)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop(url)


async def drop(url: URL) -> None:
    if url.get_backend_name() == "postgresql":
        await drop_postgres(PgDatabase(url.database or "", url.database or "", ""))


async def reflect(engine: AsyncEngine) -> MetaData:
    metadata = MetaData()
    async with engine.connect() as conn:
        await conn.run_sync(metadata.reflect)
    return metadata


def _rows(got: Any, what: str, width: int) -> list[tuple]:
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows, not {type(got).__name__}: "
                    "`result.all()` gives a list.")
    try:
        rows = [tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows (tuples); one item is "
                    f"{type(got[0]).__name__}.") from None
    if any(len(row) != width for row in rows):
        raise Wrong(f"{what}: each row should have {width} columns.")
    return rows


def _leaked(engine: AsyncEngine, what: str) -> None:
    if left := checked_out(engine):
        raise Wrong(f"{left} connection(s) were still checked out of the engine's pool after "
                    f"{what} returned: use `async with engine.connect() as conn:` (or "
                    "`engine.begin()`), which gives the connection back even on error.")


def _on(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


# --- q1: the longest tracks of a genre ------------------------------------------------------

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
    for backend in BACKENDS:
        async with fresh_engine("check_06_q1", backend) as engine:
            md = await reflect(engine)
            await _make_ties(engine, md)
            await _longest_cases(engine, md, longest_tracks, backend)
    return ("bound genre and LIMIT, longest first, ties broken by name (seen on four tied tracks "
            "stored against name order), the same code on SQLite and PostgreSQL.")


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
        _leaked(engine, "longest_tracks")
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
        rows = _rows(got, what, 2)
        if rows == expected:
            continue
        if rows and not expected and n > 0:
            raise Wrong(f"{what} returned {len(rows)} rows on {_on(backend)}, but no genre is "
                        f"called exactly {genre_name!r}: expected none. Compare the whole name "
                        "with `genre.c.name == name` (LIKE reads % and _ as patterns; an empty "
                        "name must match nothing).")
        if len(rows) != len(expected):
            if not any("LIMIT" in s.upper() for s in counter.statements):
                raise Wrong(f"{what} sent no LIMIT and returned {len(rows)} rows on {_on(backend)}; "
                            f"expected {len(expected)}. Pass n to `.limit(n)` as it is: LIMIT 0 "
                            "means no rows, while `.limit(None)` (or `n or None`) means no limit.")
            raise Wrong(f"{what} returned {len(rows)} rows on {_on(backend)}; expected "
                        f"{len(expected)}. Likely: the LIMIT got another number than n (n + 1, "
                        "n - 1), or rows were cut or added in Python. Pass n itself to `.limit(n)`.")
        if [ms for _, ms in rows] == [ms for _, ms in expected]:
            raise Wrong(f"{what} on {_on(backend)}: ties are broken another way. The check gave "
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
    hints=["Join track to genre: `select(track.c.name, track.c.milliseconds).join(genre, "
           "genre.c.genre_id == track.c.genre_id)`.",
           "Filter with `.where(genre.c.name == name)`: the comparison binds the value. Then "
           "`.order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)`.",
           "`return [tuple(row) for row in (await conn.execute(stmt)).all()]`, or simply "
           "`(await conn.execute(stmt)).all()`: Row objects are tuples."],
    limit=LIMIT, title="The longest tracks of a genre",
)


# --- q2: a playlist, all or nothing with engine.begin() -------------------------------------

Q2_TRACKS = [3, 1, 2500, 77, 3503]


async def _playlist_state(engine: AsyncEngine, md: MetaData) -> tuple[int, int]:
    playlist, playlist_track = md.tables["playlist"], md.tables["playlist_track"]
    async with engine.connect() as conn:
        return ((await conn.execute(select(func.count()).select_from(playlist))).scalar_one(),
                (await conn.execute(select(func.count()).select_from(playlist_track))).scalar_one())


async def _check_create_playlist(create_playlist) -> str:
    for backend in BACKENDS:
        async with fresh_engine("check_06_q2", backend) as engine:
            md = await reflect(engine)
            await _playlist_cases(engine, md, create_playlist, backend)
    return ("committed when complete; a failure, a broken input or a cancellation midway leaves "
            "nothing, on SQLite and PostgreSQL.")


def _left_behind(before: tuple[int, int], now: tuple[int, int], how: str) -> Wrong:
    return Wrong(f"{how}, {now[0] - before[0]} playlist(s) and {now[1] - before[1]} track row(s) "
                 "stayed in the database. Run every insert inside one `async with engine.begin() "
                 "as conn:` block: it commits at the end, or rolls back everything if an exception "
                 "(or a cancellation) leaves it.")


# On PostgreSQL the check moves the playlist's id sequence far past the largest id, so an id the
# database numbers (>= NUMBERED_FROM) differs from one worked out as MAX(playlist_id) + 1; and it
# stores a playlist of its own with a larger id still, so MAX(playlist_id) read after the INSERT
# is not the new playlist's.
NUMBERED_FROM, PLANTED = 5000, 9_000_000
_EXPLICIT_ID = re.compile(r'INSERT\s+INTO\s+"?playlist"?\s*\(([^)]*)\)', re.IGNORECASE)
CHOSE_ID = ("Let the database number the new playlist: insert only its name and read the id back "
            "with `insert(playlist).values(name=name).returning(playlist.c.playlist_id)`. An id "
            "worked out by your code (MAX(playlist_id) + 1, say) is taken twice when two calls "
            "run at once.")


async def _playlist_cases(engine: AsyncEngine, md: MetaData, create_playlist, backend: str) -> None:
    playlist, playlist_track = md.tables["playlist"], md.tables["playlist_track"]
    if backend == "postgresql":
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('playlist', 'playlist_id'), {NUMBERED_FROM}, false)")
            await conn.execute(insert(playlist).values(playlist_id=PLANTED, name="The check's own"))
    for name, tracks in (("Road trip", Q2_TRACKS), (HOSTILE_INPUTS[0], [9, 8]),
                         (HOSTILE_INPUTS[1], [4]), ("Nothing yet", []), ("", [2, 3]),
                         ("C:\\music\\50% off", [7])):
        before = await _playlist_state(engine, md)
        try:
            with StatementCounter(engine) as counter:
                playlist_id = await run(create_playlist, engine, name, list(tracks))
        except LearnerError as exc:
            if name in HOSTILE_INPUTS and "DEFAULT VALUES" not in str(exc):
                raise Wrong(f"the name {name!r} broke your query ({exc}): it became part of the "
                            "SQL. Bind it: `insert(playlist).values(name=name)`, or `:name` in "
                            "text() with the value in the parameters.") from None
            if not tracks:
                raise Wrong(f"create_playlist(engine, {name!r}, []) raised {exc}. With no tracks, "
                            "`conn.execute(insert(table), [])` runs `INSERT ... DEFAULT VALUES`, "
                            "one row of defaults: skip the track insert when the list is empty.") from None
            raise
        _leaked(engine, "create_playlist")
        if not isinstance(playlist_id, int) or isinstance(playlist_id, bool):
            raise Wrong("create_playlist should return the new playlist_id, an int (`insert(...)"
                        ".returning(playlist.c.playlist_id)`, then `.scalar_one()`); it returned "
                        f"{type(playlist_id).__name__}.")
        if any("playlist_id" in m[1].lower() for s in counter.statements
               for m in _EXPLICIT_ID.finditer(s)):
            raise Wrong(f"your INSERT into playlist names a playlist_id ({playlist_id}) itself. "
                        + CHOSE_ID)
        if backend == "postgresql" and playlist_id == PLANTED:
            raise Wrong(f"on PostgreSQL create_playlist returned {PLANTED}, the largest playlist_id, "
                        "but that playlist was the check's own, stored before the call: the id "
                        "was read afterwards (MAX(playlist_id), say), not from your INSERT. "
                        "Read it from the INSERT itself: `insert(playlist).values(name=name)"
                        ".returning(playlist.c.playlist_id)`.")
        if backend == "postgresql" and not NUMBERED_FROM <= playlist_id < PLANTED:
            raise Wrong(f"on PostgreSQL the database would have numbered the new playlist "
                        f"{NUMBERED_FROM} or more (the check moved its sequence on), but the "
                        f"playlist got {playlist_id}: the id did not come from the database. "
                        + CHOSE_ID)
        async with engine.connect() as conn:  # a new connection sees only what was committed
            stored = (await conn.execute(select(playlist.c.name)
                                         .where(playlist.c.playlist_id == playlist_id))).scalar()
            got_tracks = sorted((await conn.execute(
                select(playlist_track.c.track_id).where(playlist_track.c.playlist_id == playlist_id)
            )).scalars().all())
        if stored is None:
            raise Wrong(f"another connection cannot see playlist {playlist_id}: it was never "
                        "committed. `engine.connect()` rolls back at the end of its block unless "
                        "you `await conn.commit()`; `engine.begin()` commits for you.")
        if stored != name:
            raise Wrong(f"the playlist was stored as {stored!r}, not {name!r}: store the name "
                        "exactly as given, as a bound value: `insert(playlist).values(name=name)`, "
                        "or `:name` in text() with the value in the parameters. (A name pasted "
                        "into the SQL text, or changed in Python, ends up like this.)")
        if got_tracks != sorted(tracks):
            raise Wrong(f"playlist {name!r} holds tracks {got_tracks}; expected {sorted(tracks)}.")
        now = await _playlist_state(engine, md)
        if now != (before[0] + 1, before[1] + len(tracks)):
            raise Wrong(f"one call should add one playlist and {len(tracks)} track rows; it added "
                        f"{now[0] - before[0]} and {now[1] - before[1]}.")

    before = await _playlist_state(engine, md)
    await must_raise(DBAPIError, run(create_playlist, engine, "Twice the same", [5, 6, 5]),
                     lambda got: f"track 5 twice breaks playlist_track's primary key, but "
                                 f"create_playlist returned {got!r}: let the database error reach "
                                 "the caller.")
    _leaked(engine, "create_playlist")
    if (now := await _playlist_state(engine, md)) != before:
        raise _left_behind(before, now, "when the second track 5 was refused")

    await must_raise(InjectedFailure,
                     run(create_playlist, engine, "Broken input", ListThatBreaks([10, 11, 12, 13], 2, "track_ids")),
                     lambda got: f"the list of tracks broke midway, and create_playlist returned "
                                 f"{got!r}: let the error reach the caller.")
    _leaked(engine, "create_playlist")
    if (now := await _playlist_state(engine, md)) != before:
        raise _left_behind(before, now, "when the list of tracks broke midway (not a database error)")

    await _cancel_midway(engine, md, create_playlist, before)
    if backend == "postgresql":
        await _at_once(engine, md, create_playlist)


async def _at_once(engine: AsyncEngine, md: MetaData, create_playlist) -> None:
    """Four calls at once on PostgreSQL: each must get its own playlist, with its own tracks."""
    playlist, playlist_track = md.tables["playlist"], md.tables["playlist_track"]
    names = [f"At once {i}" for i in range(4)]

    async def at_once(engine: AsyncEngine) -> list[Any]:  # one run(): one watch over the leaks
        return await asyncio.gather(*(create_playlist(engine, name, [20 + i, 30 + i])
                                      for i, name in enumerate(names)), return_exceptions=True)

    results = await run(at_once, engine)
    for result in results:
        if isinstance(result, Exception):
            raise Wrong(f"4 calls of create_playlist at once on PostgreSQL: one raised "
                        f"{type(result).__name__}: {str(result).splitlines()[0] if str(result) else ''}. "
                        "Each call must succeed on its own: let the database number each "
                        "playlist (`.returning(playlist.c.playlist_id)`), one `engine.begin()` "
                        "block per call.")
        if isinstance(result, BaseException):
            raise result
    async with engine.connect() as conn:
        for i, (name, playlist_id) in enumerate(zip(names, results, strict=True)):
            stored = await conn.scalar(select(playlist.c.name).where(playlist.c.playlist_id == playlist_id))
            tracks = sorted((await conn.execute(select(playlist_track.c.track_id).where(
                playlist_track.c.playlist_id == playlist_id))).scalars().all())
            if stored != name or tracks != [20 + i, 30 + i]:
                raise Wrong(f"4 calls of create_playlist at once on PostgreSQL: the call for "
                            f"{name!r} returned {playlist_id}, which holds {stored!r} with tracks "
                            f"{tracks}. Read the new id from the INSERT itself, "
                            "`.returning(playlist.c.playlist_id)`, not from another query.")


async def _cancel_midway(engine: AsyncEngine, md: MetaData, create_playlist, before: tuple[int, int]) -> None:
    """Cancel the learner's task as its first playlist_track insert starts: the playlist row is
    in, the tracks are not. The cancellation must roll it back and reach the caller."""
    target: list[asyncio.Task] = []

    def cancel_on_tracks(conn, cursor, statement, parameters, context, executemany) -> None:
        if target and "playlist_track" in statement and statement.lstrip().upper().startswith("INSERT"):
            target.pop().cancel()

    event.listen(engine.sync_engine, "before_cursor_execute", cancel_on_tracks)
    try:
        task = asyncio.create_task(run(create_playlist, engine, "Cancelled", [14, 15, 16]))
        target.append(task)
        try:
            got = await task
        except LearnerError as exc:
            if (now := await _playlist_state(engine, md)) != before:
                raise _left_behind(before, now, "when the call was cancelled midway") from None
            raise Wrong(f"when the check cancelled create_playlist midway, it raised {exc} instead "
                        "of letting the cancellation through: after a cancellation, don't run "
                        "more SQL (a commit in `finally:`, say); let `engine.begin()` roll back.") from None
        except asyncio.CancelledError:
            if target:  # the task never reached the insert: it was not our cancellation
                raise Wrong("create_playlist never inserted into playlist_track.") from None
            task_cancelled = True
        else:
            task_cancelled = False
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", cancel_on_tracks)
    if not task_cancelled:
        raise Wrong(f"the check cancelled create_playlist while it inserted the tracks, and it "
                    f"returned {got!r} instead: a cancellation must reach the caller. Don't catch "
                    "BaseException or CancelledError (or re-raise it).")
    await asyncio.sleep(0)
    _leaked(engine, "the cancelled create_playlist")
    if (now := await _playlist_state(engine, md)) != before:
        raise _left_behind(before, now, "when the call was cancelled midway")


q2 = Exercise(
    "q2", "create_playlist", _check_create_playlist,
    hints=["`async with engine.begin() as conn:` opens a connection and a transaction: COMMIT when "
           "the block ends, ROLLBACK when an exception or a cancellation leaves it.",
           "`playlist_id = (await conn.execute(insert(playlist).values(name=name)"
           ".returning(playlist.c.playlist_id))).scalar_one()`.",
           "Then, only if there are tracks: `await conn.execute(insert(playlist_track), "
           "[{\"playlist_id\": playlist_id, \"track_id\": t} for t in track_ids])`, one "
           "executemany for all of them."],
    limit=LIMIT, title="A playlist, all or nothing",
)


# --- q3: export a big table, a partition at a time -------------------------------------------

SMALL, BIG = 5_000, 20_000  # small enough for a row-by-row answer; 4x apart for the memory test
MEMORY_FLOOR = 5_000_000  # bytes; below it, growth is not worth a remark (every row kept: 9 MB)


def lines_table(metadata: MetaData, name: str = "line_big") -> Table:
    """The synthetic invoice lines' table (course.synthetic), on any backend."""
    return Table(name, metadata,
                 Column("invoice_line_id", Integer, primary_key=True, autoincrement=False),
                 Column("invoice_id", Integer, nullable=False),
                 Column("track_id", Integer, nullable=False),
                 Column("unit_price", Numeric(10, 2), nullable=False),
                 Column("quantity", Integer, nullable=False))


def _as_dicts(rows: list[tuple]) -> list[dict[str, Any]]:
    return [dict(zip(synthetic.INVOICE_LINE_COLUMNS, row, strict=True)) for row in rows]


async def _fill(engine: AsyncEngine, table: Table, rows: list[tuple]) -> None:
    async with engine.begin() as conn:
        await conn.execute(table.delete())
        if rows:
            await conn.execute(insert(table), _as_dicts(rows))


class CsvSink:
    """A file-like object that keeps a fingerprint of what is written, not the text itself."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.lines = self.crlf = 0

    def write(self, text: str) -> int:
        self._digest.update(text.encode())
        self.lines += text.count("\n")
        self.crlf += text.count("\r\n")
        return len(text)

    @property
    def fingerprint(self) -> str:
        return self._digest.hexdigest()[:16]


def _expected_csv(rows: list[tuple], price: Any = Decimal, end: str = "\r\n") -> str:
    """The fingerprint of the right CSV; with price=float, of one that wrote prices as floats;
    with end="\n", of one whose lines end as a hand-made join's do."""
    sink = CsvSink()
    writer = csv.writer(sink, lineterminator=end)
    for line_id, invoice_id, track_id, unit_price, quantity in sorted(rows):
        writer.writerow((line_id, invoice_id, track_id, price(unit_price), quantity))
    return sink.fingerprint


# prices whose float prints otherwise than the Decimal (synthetic's 0.99 and 1.99 print alike)
ODD_PRICES = (Decimal("0.10"), Decimal("2.00"), Decimal("1.50"))


def _with_odd_prices(rows: list[tuple]) -> list[tuple]:
    return [(line_id, invoice_id, track_id, ODD_PRICES[line_id % 3] if line_id % 10 == 0 else price, quantity)
            for line_id, invoice_id, track_id, price, quantity in rows]


@functools.lru_cache(maxsize=3)
def _export_data(size: int, seed: int) -> tuple[list[tuple], str]:
    """q3's rows for one case, in the order they are inserted, and the fingerprint of the right
    CSV; made once, as both backends (and every answer checked in this process) get the same."""
    rows = _with_odd_prices([(line_id * 3 + 5, *rest)
                             for line_id, *rest in synthetic.invoice_lines(size, seed)])
    rows.reverse()  # inserted out of order: the export must ORDER BY
    return rows, _expected_csv(rows)


@contextlib.contextmanager
def _peak_memory() -> Iterator[list[int]]:
    """Peak of Python allocations (tracemalloc) while the block runs, in bytes."""
    found: list[int] = []
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield found
    finally:
        found.append(max(0, tracemalloc.get_traced_memory()[1] - base))
        if started:
            tracemalloc.stop()


async def _check_export_lines(export_lines) -> str:
    for backend in BACKENDS:
        async with fresh_engine("check_06_q3", backend) as engine:
            table = lines_table(MetaData())
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.create_all)
            await _export_cases(engine, table, export_lines, backend)
    return (f"streamed on a server-side cursor; peak memory did not grow in step with the table "
            f"({SMALL} then {BIG} rows); the same CSV on SQLite and PostgreSQL.")


async def _export_cases(engine: AsyncEngine, table: Table, export_lines, backend: str) -> None:
    found: list[int] = []
    streamed: list[bool] = []  # for each SELECT of the table: did it run on a server-side cursor?

    def watch(conn, cursor, statement, parameters, context, executemany) -> None:
        if table.name in statement and statement.lstrip().upper().startswith("SELECT"):
            streamed.append(bool(context.execution_options.get("stream_results")))

    # an empty table first; then shuffled ids, not contiguous, and two different shops: a
    # canned answer cannot match
    for size, seed in ((0, 3), (SMALL, 7), (BIG, 11)):
        rows, expected = _export_data(size, seed)
        await _fill(engine, table, rows)
        sink = CsvSink()
        streamed.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", watch)
        try:
            async with engine.connect() as conn:
                with _peak_memory() as peak:
                    got = await run(export_lines, conn, table, sink)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", watch)
        _leaked(engine, "export_lines")
        if not streamed:
            raise Wrong("export_lines never read the table it was given (`table`).")
        if not all(streamed):
            raise Wrong("export_lines fetched every row at once (conn.execute() buffers the whole "
                        "result before it returns). Stream it: `result = await conn.stream(stmt)`, "
                        "then `async for part in result.partitions(1000):`.")
        if got != size:
            raise Wrong(f"export_lines returned {got!r}; expected the number of rows written, {size}.")
        if sink.lines != size:
            raise Wrong(f"{sink.lines} lines were written for {size} rows: one csv line per row, "
                        "`writer.writerow(row)`, no header.")
        if sink.fingerprint != expected and sink.fingerprint == _expected_csv(rows, float):
            raise Wrong("the prices were written as floats (0.1 for the unit_price 0.10, 2.0 for "
                        "2.00): unit_price is a Decimal, exact to the cent. Write each row's "
                        "values as they come, `writer.writerow(row)`.")
        if sink.fingerprint != expected and sink.fingerprint == _expected_csv(rows, end="\n"):
            raise Wrong("every row's values were right and in order, but each line ended with "
                        "\"\\n\", where csv.writer(out) ends lines with \"\\r\\n\" (and "
                        "quotes a value that holds a comma or a quote): the lines were likely "
                        "built by hand, `\",\".join(...) + \"\\n\"`. Write each row with "
                        "`csv.writer(out).writerow(row)`, as the statement asks.")
        if sink.fingerprint != expected:
            ends = (" Its lines ended with \"\\n\", not csv.writer's \"\\r\\n\": likely "
                    "written by hand." if sink.lines and sink.crlf < sink.lines else "")
            raise Wrong(f"the CSV written on {_on(backend)} differs from the table's rows in "
                        "invoice_line_id order: select every column of `table`, ORDER BY "
                        "invoice_line_id, and write each row with csv.writer(out).writerow(row)."
                        + ends)
        found.append(peak[0])
    small, big = found[-2:]
    if big > MEMORY_FLOOR and big > 2 * small:
        raise Wrong(f"you streamed, but memory grew with the table ({big / max(small, 1):.1f}× for "
                    "4× the rows): every row was kept (`await result.all()`, a list of every row, "
                    "or partitions as big as the table). Handle each partition and let it go.")


q3 = Exercise(
    "q3", "export_lines", _check_export_lines,
    hints=["`result = await conn.stream(select(table).order_by(table.c.invoice_line_id))` gives "
           "an AsyncResult that fetches rows as you go (a server-side cursor).",
           "`async for part in result.partitions(1000):` hands you lists of at most 1 000 rows; "
           "write them with `writer.writerows(part)` and count them.",
           "`writer = csv.writer(out)` once, before the loop; `return count` at the end."],
    limit=LIMIT, title="Export a big table, a partition at a time",
)


# --- q4: a bulk insert in one executemany ----------------------------------------------------

BULK = 7_000   # x 5 columns = 35 000 values: more than one statement may bind on either backend


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def _check_load_lines(load_lines) -> str:
    for backend in BACKENDS:
        async with fresh_engine("check_06_q4", backend) as engine:
            table = lines_table(MetaData(), "line_load")
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.create_all)
            await _load_cases(engine, table, load_lines, backend)
    return (f"{BULK} rows in one INSERT executemany, committed; all or nothing; an empty list "
            "inserts nothing, on SQLite and PostgreSQL.")


class _AutocommitInsert(Exception):
    """Raised by the check, before the statement runs, for an INSERT on an AUTOCOMMIT connection."""


class _NoAutocommit(StatementCounter):
    """A StatementCounter that stops an INSERT sent on an AUTOCOMMIT connection before it runs:
    every row of it would commit alone, a disk sync each (thousands of them, a minute on a busy
    machine), and the check already knows the answer is wrong."""

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        super()._on_execute(conn, cursor, statement, parameters, context, executemany)
        if statement.lstrip().upper().startswith("INSERT") and \
                conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            raise _AutocommitInsert(statement)


async def _load_cases(engine: AsyncEngine, table: Table, load_lines, backend: str) -> None:
    first = 1_000_003
    for size, seed in ((1_500, 3), (BULK, 5)):
        made = synthetic.invoice_lines(size, seed, first_id=first)
        rows = [(first + 7 * k, *rest) for k, (_, *rest) in enumerate(made)]  # ids with gaps
        rows.reverse()  # and not in id order
        first += 8 * size
        before = await _count(engine, table)
        with _NoAutocommit(engine) as counter:
            try:
                got = await run(load_lines, engine, table, list(rows))
            except LearnerError as exc:
                if isinstance(exc.__cause__, _AutocommitInsert):
                    raise Wrong(f"load_lines sent its INSERT on a connection set to "
                                "isolation_level='AUTOCOMMIT': each row commits on its own, so "
                                "when a row fails midway the rows before it stayed on "
                                f"{_on(backend)} (and {size} rows cost {size} commits). Use "
                                "`async with engine.begin() as conn:`, which commits all the rows "
                                "together or none of them.") from None
                if isinstance(exc.__cause__, IntegrityError):
                    raise Wrong(_refused(size, exc)) from None
                if "Boolean value of this clause" in str(exc):
                    raise Wrong(f"your code raised {exc}: a Column object was compared or tested "
                                "as if it were a plain value (as a dict key, say). Key each dict "
                                "by the column's name, `dict(zip(table.c.keys(), line))`.") from None
                if "too many" in str(exc).lower() or "32767" in str(exc) or "arguments" in str(exc).lower():
                    raise Wrong(f"{size} rows failed ({exc}): `.values(list)` builds one statement "
                                "with a parameter per value, and databases cap those. Pass the list "
                                "as execute()'s second argument instead: an executemany.") from None
                raise
        _leaked(engine, "load_lines")
        inserts = [s for s in counter.statements if s.lstrip().upper().startswith("INSERT")]
        if any(str(rows[0][0]) in s for s in inserts):
            raise Wrong("the values are inside your SQL text: bind them (`insert(table)` with a list "
                        "of dicts, or `text()` with `:name` parameters).")
        if len(inserts) > 1:
            raise Wrong(f"load_lines ran {len(inserts)} INSERT statements for {size} rows: one per "
                        "row (or per chunk). Send them all in one call: `await conn.execute("
                        "insert(table), list_of_dicts)`, which is an executemany.")
        stored = await _count(engine, table)
        if stored == before and size:
            raise Wrong(f"after load_lines returned, another connection sees none of the {size} rows: "
                        "they were not committed. `engine.begin()` commits at the end of its block.")
        if stored != before + size:
            raise Wrong(f"load_lines added {stored - before} rows for {size} lines.")
        if got != size:
            raise Wrong(f"load_lines returned {got!r}; expected the number of rows inserted, {size}.")
        async with engine.connect() as conn:
            last = (await conn.execute(select(table).where(table.c.invoice_line_id == rows[-1][0]))).one()
        if tuple(last) != tuple(rows[-1]):
            raise Wrong(f"the last line was stored as {tuple(last)}; expected {rows[-1]}: keep the "
                        "columns in the table's order.")

    before = await _count(engine, table)
    try:
        got = await run(load_lines, engine, table, [])
    except LearnerError as exc:
        raise Wrong(f"load_lines(engine, table, []) raised {exc}. With an empty list, "
                    "`conn.execute(insert(table), [])` runs `INSERT ... DEFAULT VALUES`: return 0 "
                    "without executing anything when there is nothing to insert.") from None
    if (now := await _count(engine, table)) != before or got != 0:
        raise Wrong(f"load_lines(engine, table, []) added {now - before} row(s) and returned {got!r}. "
                    "With an empty list, `conn.execute(insert(table), [])` runs `INSERT ... DEFAULT "
                    "VALUES`, one row of defaults: return 0 without executing anything.")

    clash = [(77, 1, 5, Decimal("0.99"), 1), (78, 1, 6, Decimal("0.99"), 1), (77, 2, 7, Decimal("0.99"), 2)]
    await must_raise(DBAPIError, run(load_lines, engine, table, clash),
                     lambda got: f"two lines with invoice_line_id 77 break the primary key, but "
                                 f"load_lines returned {got!r}: let the error reach the caller.")
    _leaked(engine, "load_lines")
    if (now := await _count(engine, table)) != before:
        raise Wrong(f"when one line was refused (a duplicate id), {now - before} line(s) stayed on "
                    f"{_on(backend)}: insert all the lines in one call inside `engine.begin()`, so "
                    "they commit together or not at all.")


def _refused(size: int, exc: LearnerError) -> str:
    """What an IntegrityError on the check's good lines (distinct ids, every column) means."""
    text = str(exc).lower()
    if "null" in text:
        return (f"the database refused one of {size} lines, a column without a value ({exc}). "
                "Key each dict by the column's name, `dict(zip(table.c.keys(), line))`: Column "
                "objects or other names as keys leave the columns empty.")
    if "unique" in text or "duplicate" in text:
        return (f"the database refused one of {size} lines as a duplicate ({exc}), though every "
                "invoice_line_id the check sent is different: some line was inserted twice (a "
                "second execute of the same rows, or a retry after a failure). Insert the list "
                "once, in one `await conn.execute(insert(table), rows)`.")
    return (f"the database refused one of {size} good lines ({exc}): store each tuple as it is, "
            "its values in the table's column order.")


q4 = Exercise(
    "q4", "load_lines", _check_load_lines,
    hints=["Turn each tuple into a dict keyed by column name: `dict(zip(table.c.keys(), line))`.",
           "`await conn.execute(insert(table), list_of_dicts)`: a list as the second argument makes "
           "SQLAlchemy use the driver's executemany, one call for every row.",
           "Inside `async with engine.begin() as conn:`; and `if not lines: return 0` first, because "
           "an empty list would insert one row of defaults."],
    limit=LIMIT, title="A bulk insert in one call",
)


# --- q5: an engine's whole life --------------------------------------------------------------

class _PoolWatch:
    """Every DBAPI connection any pool opens, checks out, checks in and closes meanwhile, and
    every engine that connects and every engine whose dispose() is called."""

    def __init__(self) -> None:
        self.opened = self.closed = self.out = self.back = 0
        self.sync = False
        self._open: dict[int, Any] = {}  # the DBAPI connections not closed yet
        self.engines: dict[int, Any] = {}  # the engines that connected
        self.disposed: set[int] = set()

    def _engine_connect(self, conn) -> None:
        self.engines[id(conn.engine)] = conn.engine

    def _engine_disposed(self, engine) -> None:
        self.disposed.add(id(engine))

    def undisposed(self) -> int:
        """Engines that connected and whose dispose() was never called."""
        return len(self.engines.keys() - self.disposed)

    def _connect(self, dbapi_connection, record) -> None:
        self.opened += 1
        self._open[id(dbapi_connection)] = dbapi_connection
        if "AsyncAdapt" not in type(dbapi_connection).__name__:
            self.sync = True

    def _close(self, dbapi_connection, record) -> None:
        self.closed += 1
        self._open.pop(id(dbapi_connection), None)

    async def release(self) -> None:
        """End the connections an engine the code never disposed still holds, while the loop
        runs: otherwise aiosqlite's thread reports "Event loop is closed" when it goes later."""
        for connection in self._open.values():
            with contextlib.suppress(Exception):
                connection.terminate()
            thread = getattr(getattr(connection, "_connection", None), "_thread", None)
            if thread is not None and thread.is_alive():
                await asyncio.to_thread(thread.join, 5)
        self._open.clear()
        await asyncio.sleep(0)  # the thread's last callback runs on this loop

    def _checkout(self, *args: Any) -> None:
        self.out += 1

    def _checkin(self, *args: Any) -> None:
        self.back += 1

    def __enter__(self) -> _PoolWatch:
        for name in ("connect", "close", "checkout", "checkin"):
            event.listen(Pool, name, getattr(self, f"_{name}"))
        for name in ("engine_connect", "engine_disposed"):
            event.listen(Engine, name, getattr(self, f"_{name}"))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in ("connect", "close", "checkout", "checkin"):
            event.remove(Pool, name, getattr(self, f"_{name}"))
        for name in ("engine_connect", "engine_disposed"):
            event.remove(Engine, name, getattr(self, f"_{name}"))


NO_ALBUMS = "Milton Nascimento & Bebeto"  # in Chinook's artist table, with no album
ARTISTS = [("Iron Maiden", 21), ("AC/DC", 2), ("Guns N' Roses", 3), ("Nobody at all", 0),
           (NO_ALBUMS, 0), ("", 0), (HOSTILE_INPUTS[0], 0)]


async def _check_count_albums(count_albums) -> str:
    for backend in BACKENDS:
        url = await fresh_engine_url("check_06_q5", backend)
        broken = await fresh_engine_url("check_06_q5_broken", backend)
        try:
            engine = create_async_engine(broken)
            async with engine.begin() as conn:  # the broken copy has no album table
                await conn.exec_driver_sql("DROP TABLE album" + (" CASCADE" if backend == "postgresql" else ""))
            await engine.dispose()
            await _lifecycle_cases(url, broken, count_albums, backend)
        finally:
            await drop(url)
            await drop(broken)
    return ("dispose() was called on the engine each call used, on success and on error, and "
            "no connection was left open.")


def _closed_all(watch: _PoolWatch, what: str) -> None:
    if watch.sync:
        raise Wrong(SYNC_DRIVER)
    if watch.out > watch.back:
        raise Wrong(f"{what}: a connection was never given back to the pool (connect() without "
                    "close()), so dispose() could not close it. Use `async with engine.connect() "
                    "as conn:`.")
    if watch.opened > watch.closed:
        raise Wrong(f"{what}: {watch.opened - watch.closed} connection(s) stayed open in the "
                    "engine's pool. `await engine.dispose()` closes them; put it in a `finally:` "
                    "so it runs on every path.")
    if watch.undisposed():
        raise Wrong(f"{what}: the engine it created was never disposed of (no call to "
                    "dispose() was seen). Every connection it opened was closed, as a NullPool does "
                    "on its own, but the function is to dispose of its engine: `await engine.dispose()` in a `finally:`, so it runs on every path.")


async def _lifecycle_cases(url: URL, broken: URL, count_albums, backend: str) -> None:
    for artist, albums in ARTISTS:
        with _PoolWatch() as watch:
            try:
                got = await run(count_albums, url, artist)
            except LearnerError as exc:
                if "***" in str(exc) or "password" in str(exc).lower():
                    raise Wrong("str(url) hides the password as ***: pass the URL object itself "
                                "to create_async_engine().") from None
                if "'" in artist:
                    raise Wrong(f"the name {artist!r} broke your query ({exc}): it became part of "
                                "the SQL. Bind it: `artist.c.name == name` in select(), or `:name` "
                                "in text().") from None
                raise
            finally:
                await watch.release()
            await asyncio.sleep(0)
        if not watch.opened:
            raise Wrong("count_albums never opened a connection of its own: create an engine from "
                        "the url you are given, with create_async_engine(url).")
        _closed_all(watch, f"after count_albums(url, {artist!r}) returned")
        if got != albums:
            why = (" This artist exists but has no album: likely an outer join from artist to album "
                   "(one row of NULLs) counted with count(*). Count `album.c.album_id`, or select "
                   "from album joined to artist." if artist == NO_ALBUMS and got == 1 else "")
            raise Wrong(f"count_albums(url, {artist!r}) returned {got!r} on {_on(backend)}; "
                        f"expected {albums}.{why}")
    with _PoolWatch() as watch:
        await must_raise(DBAPIError, run(count_albums, broken, "AC/DC"),
                         lambda got: f"the check gave a database without an album table, and "
                                     f"count_albums returned {got!r}: let the error reach the caller.")
        await asyncio.sleep(0)
    await watch.release()
    _closed_all(watch, "when the query failed (a database without an album table)")


q5 = Exercise(
    "q5", "count_albums", _check_count_albums,
    hints=["`engine = create_async_engine(url)` at the start of the function; the URL already "
           "names the async driver.",
           "`try:` … `async with engine.connect() as conn:` … `finally: await engine.dispose()`: "
           "dispose() closes the pool's connections on success and on error.",
           "The query: `select(func.count()).select_from(album).join(artist, artist.c.artist_id == "
           "album.c.artist_id).where(artist.c.name == name)`, then `.scalar_one()`."],
    limit=LIMIT, title="An engine's whole life",
)
