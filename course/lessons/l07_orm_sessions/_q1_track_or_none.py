"""q1: a track by its key, or None (session.get and the identity map)."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from course.checking.backends import on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong
from course.db.engines import Backend
from course.models import Track
from course.probes import HOSTILE_INPUTS, StatementCounter

from ._common import LIMIT, fstring_sql, literal_in, new_track, on_backend, run


async def _check_track_or_none(track_or_none) -> str:
    await on_each_backend("check-07-q1-{backend}",
                          lambda engine, backend: _track_cases(engine, backend, track_or_none))
    return ("a Track or None on SQLite and PostgreSQL, from the session you passed, and no query "
            "when the track is already in it.")


async def _track_cases(engine: AsyncEngine, backend: Backend, track_or_none) -> None:
    rng = random.Random()
    new_id = rng.randrange(5_000, 9_000)  # beyond Chinook's 3503 tracks, with a gap before it
    hostile = HOSTILE_INPUTS[2]
    Session = async_sessionmaker(engine, expire_on_commit=False)
    async with Session.begin() as s:
        s.add(new_track(new_id, hostile))
    wanted = [*rng.sample(range(2, 3503), 3), 3503, new_id]
    missing = [0, 3504, new_id - 1, -7]
    async with Session() as session:
        names = dict((await session.execute(
            select(Track.track_id, Track.name).where(Track.track_id.in_(wanted)))).all())
        session.expunge_all()
        for track_id in wanted + missing:
            with StatementCounter(engine) as counter:
                try:
                    got = await run(track_or_none, session, track_id)
                except LearnerError as exc:
                    if type(exc.__cause__).__name__ == "NoResultFound":
                        raise Wrong(f"{on_backend(backend)}track_or_none(session, {track_id}) raised "
                                    f"{exc}: there is no track {track_id}, and `.one()` insists on "
                                    "exactly one row. Return None instead: session.get does.") from None
                    raise
            if (value := literal_in(counter.statements, [track_id])) is not None:
                raise fstring_sql(value)
            call_text = f"{on_backend(backend)}track_or_none(session, {track_id})"
            if track_id in missing:
                if got is not None:
                    raise Wrong(f"{call_text} returned {got!r}; there is no track {track_id}, so "
                                "it should return None.")
                continue
            if got is None:
                raise Wrong(f"{call_text} returned None, but track {track_id} exists "
                            f"({names[track_id]!r}; the check added tracks beyond Chinook's "
                            "3503, with gaps in the ids). Look it up by its key.")
            if not isinstance(got, Track):
                raise Wrong(f"{call_text} returned {type(got).__name__}, not a Track: return the "
                            "ORM object itself (session.get gives it), not a row or a name.")
            if got.track_id != track_id or got.name != names[track_id]:
                raise Wrong(f"{call_text} returned {got!r}: that is not track {track_id} "
                            f"({names[track_id]!r}). Look it up by its key.")
            if got not in session:
                raise Wrong(f"{call_text} returned a Track that does not belong to the session you "
                            "were given (another session or engine made it, or the session was "
                            "closed). Use that session, and leave it open: the caller owns it.")
        # the identity map: a track the session already holds needs no query
        kept = await session.get(Track, wanted[0])
        with StatementCounter(engine) as counter:
            got = await run(track_or_none, session, wanted[0])
        if got is not kept:
            raise Wrong(f"{on_backend(backend)}with track {wanted[0]} already in the session, "
                        "track_or_none returned another object: the session should hand back the "
                        "one it holds (its identity map).")
        if counter.count:
            raise Wrong(f"{on_backend(backend)}track {wanted[0]} was already in the session, yet "
                        f"track_or_none ran {counter.count} statement(s). `session.get()` looks in "
                        "the identity map first and asks the database only when it must; a "
                        "select() always asks, and so does get() with populate_existing=True.")


q1 = Exercise(
    "q1", "track_or_none", _check_track_or_none,
    hints=["Section 3 of the lesson (reading, and the identity map) shows a session method that "
           "takes a model class and a primary key, and looks in the session before it asks the "
           "database.",
           "`session.get` returns None when no row has that key, and it is a coroutine: `await` it.",
           "`return await session.get(Track, track_id)`"],
    limit=LIMIT,
    title="A track by its key, or None",
)
