"""q2: a playlist, all or nothing with engine.begin() (errors, a broken list, a cancellation)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import MetaData, event, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from course.checking.backends import on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong, must_raise
from course.probes import HOSTILE_INPUTS, InjectedFailure, ListThatBreaks, StatementCounter

from ._common import LIMIT, leaked, reflect, run

Q2_TRACKS = [3, 1, 2500, 77, 3503]


async def _playlist_state(engine: AsyncEngine, md: MetaData) -> tuple[int, int]:
    playlist, playlist_track = md.tables["playlist"], md.tables["playlist_track"]
    async with engine.connect() as conn:
        return ((await conn.execute(select(func.count()).select_from(playlist))).scalar_one(),
                (await conn.execute(select(func.count()).select_from(playlist_track))).scalar_one())


async def _check_create_playlist(create_playlist) -> str:
    async def cases(engine: AsyncEngine, backend: str) -> None:
        await _playlist_cases(engine, await reflect(engine), create_playlist, backend)

    await on_each_backend("check_06_q2", cases)
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
        leaked(engine, "create_playlist")
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
    leaked(engine, "create_playlist")
    if (now := await _playlist_state(engine, md)) != before:
        raise _left_behind(before, now, "when the second track 5 was refused")

    await must_raise(InjectedFailure,
                     run(create_playlist, engine, "Broken input", ListThatBreaks([10, 11, 12, 13], 2, "track_ids")),
                     lambda got: f"the list of tracks broke midway, and create_playlist returned "
                                 f"{got!r}: let the error reach the caller.")
    leaked(engine, "create_playlist")
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
    leaked(engine, "the cancelled create_playlist")
    if (now := await _playlist_state(engine, md)) != before:
        raise _left_behind(before, now, "when the call was cancelled midway")


q2 = Exercise(
    "q2", "create_playlist", _check_create_playlist,
    hints=["The playlist row and its tracks must be committed together or not at all, even when "
           "the task is cancelled halfway. Of the engine's two ways to open a connection (the "
           "lesson's section 2, `connect()` or `begin()`), which one decides COMMIT or ROLLBACK for you?",
           "`async with engine.begin() as conn:` opens a connection and a transaction: COMMIT when "
           "the block ends, ROLLBACK when an exception or a cancellation leaves it. Inside it: "
           "`playlist_id = (await conn.execute(insert(playlist).values(name=name)"
           ".returning(playlist.c.playlist_id))).scalar_one()`.",
           "Then, only if there are tracks: `await conn.execute(insert(playlist_track), "
           "[{\"playlist_id\": playlist_id, \"track_id\": t} for t in track_ids])`, one "
           "executemany for all of them."],
    limit=LIMIT, title="A playlist, all or nothing",
)
