"""q4: concurrent lookups, one session per task."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from course.checking.backends import on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong
from course.db.engines import Backend
from course.models import Track
from course.probes import HOSTILE_INPUTS, StatementCounter, checked_out

from ._common import LIMIT, SessionWatch, fstring_sql, literal_in, new_track, on_backend, run


async def _check_track_names(track_names) -> str:
    await on_each_backend("check-07-q4-{backend}",
                          lambda engine, backend: _names_cases(engine, backend, track_names))
    return ("one session per task on SQLite and PostgreSQL, several at work at once, every one "
            "closed, names in the order asked.")


async def _names_cases(engine: AsyncEngine, backend: Backend, track_names) -> None:
    on = on_backend(backend)
    rng = random.Random()
    new_id = rng.randrange(5_000, 9_000)
    plain = async_sessionmaker(engine, expire_on_commit=False)
    async with plain.begin() as s:
        s.add(new_track(new_id, HOSTILE_INPUTS[1]))
    async with plain() as s:  # the pool is warm from here on, as it is in a running app
        names = dict((await s.execute(select(Track.track_id, Track.name))).all())
    shuffled = rng.sample(range(1, 3504), 6)
    cases = [[9, 3, 1], [*shuffled, new_id, 999_999, shuffled[0], 2], []]
    for ids in cases:
        watch = SessionWatch()
        try:
            await _names_case(engine, on, names, ids, watch, track_names)
        finally:
            for session in watch.created:  # close what the learner's code left open
                await session.close()


async def _names_case(engine: AsyncEngine, on: str, names: dict[int, str], ids: list[int],
                      watch: SessionWatch, track_names) -> None:
    Session = watch.sessionmaker(engine)
    with StatementCounter(engine) as counter:
        try:
            got = await run(track_names, Session, list(ids))
        except LearnerError as exc:
            if watch.shared > 1:
                raise Wrong(_shared(on, watch.shared)) from None
            cause = str(exc.__cause__)
            if "isce" in cause or "concurrent operations are not permitted" in cause:
                raise Wrong(_shared(on, 2)) from None
            if "'async_sessionmaker' object" in cause or "'WatchedSession'" in cause:
                raise Wrong(f"{on}your code raised {exc}. `Session` is a sessionmaker, a factory "
                            "of sessions, not a session: call it to get one, `async with Session() "
                            "as session:` inside each task, then `await session.scalar(...)`.") from None
            raise
    await asyncio.sleep(0)
    if (value := literal_in(counter.statements, ids)) is not None:
        raise fstring_sql(value)
    if watch.shared > 1:
        raise Wrong(_shared(on, watch.shared))
    if unclosed := watch.unclosed():
        raise Wrong(f"{on}{unclosed} session(s) were still open when track_names returned: "
                    "each holds a connection out of the pool until someone closes it. Open "
                    "each one with `async with Session() as session:`.")
    if left := checked_out(engine):
        raise Wrong(f"{on}{left} connection(s) were still checked out of the pool when "
                    "track_names returned. Open sessions with `async with Session() as "
                    "session:` and connections with `async with`, so they go back.")
    expected = [names.get(i) for i in ids]
    if not isinstance(got, list):
        raise Wrong(f"track_names should return a list of names, not {type(got).__name__}.")
    if got != expected:
        if sorted(map(str, got)) == sorted(map(str, expected)):
            raise Wrong(f"{on}track_names(Session, {ids}) returned the right names in another "
                        "order: keep the order of track_ids (gather keeps the order of its "
                        "arguments).")
        raise Wrong(f"{on}track_names(Session, {ids}) returned {got!r}; expected {expected!r} "
                    "(None for a track that does not exist, a repeated id repeated).")
    if len(ids) > 1 and len(watch.created) < len(set(ids)):
        raise Wrong(f"{on}track_names used {len(watch.created)} session(s) for {len(set(ids))} "
                    "different ids: give every task its own, `async with Session() as session:` "
                    "inside the task.")
    if len(ids) > 1 and watch.peak < 2:
        raise Wrong(f"{on}the lookups ran one at a time (at most {watch.peak} session at work "
                    "at once). Start one task per id with asyncio.gather (or a TaskGroup), "
                    "each opening its own session.")


def _shared(on: str, tasks: int) -> str:
    return (f"{on}one session was used by {tasks} concurrent tasks. An AsyncSession is not safe "
            "to share: with an empty pool it fails (\"This session is provisioning a new "
            "connection; concurrent operations are not permitted\"), with a warm pool it "
            "silently runs the tasks one after another. Open one per task: `async with "
            "Session() as session:` inside the task.")


q4 = Exercise(
    "q4", "track_names", _check_track_names,
    hints=["A session serves one task at a time: give each lookup a task of its own, and each "
           "task a session of its own, opened from `Session` and closed when the task is done.",
           "Write a small `async def one(track_id)` that opens its own session, `async with "
           "Session() as session:`, and returns `await session.scalar(select(Track.name)"
           ".where(Track.track_id == track_id))` (None for a missing track).",
           "`return list(await asyncio.gather(*(one(i) for i in track_ids)))`: one task per id, "
           "results in the order of the ids."],
    limit=LIMIT,
    title="Concurrent lookups, one session per task",
)
