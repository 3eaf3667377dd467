"""q1: a session whose test is rolled back."""

from __future__ import annotations

import inspect

from course.apps.capstone_tools import take_over_begin
from course.checking.checks import Exercise, Wrong, call
from course.probes import checked_out

from ._common import _count_artists, _database, _finish, _first, _not_a_generator


async def _check_rolled_back_session(rolled_back_session) -> str:
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

    from course.models import Artist

    url = await _database("check-11-q1")
    engine = take_over_begin(create_async_engine(url))
    what = "rolled_back_session(engine)"
    try:
        for run in (1, 2):  # two tests in a row, as pytest would run them
            name = f"Check band {run} O'Hara \"live\""
            agen = await call(rolled_back_session, engine)
            if isinstance(agen, AsyncSession):
                await agen.close()
                raise _not_a_generator(what, agen)
            if not inspect.isasyncgen(agen):
                raise _not_a_generator(what, agen)
            session = await _first(agen, what)
            if not isinstance(session, AsyncSession):
                await agen.aclose()
                raise Wrong(f"{what} yielded {type(session).__name__}; yield the AsyncSession.")
            bind = session.bind
            if not isinstance(bind, AsyncConnection):
                await agen.aclose()
                raise Wrong(f"{what}: the session is bound to {type(bind).__name__}, so every "
                            "commit of the test takes a connection of its own and really "
                            "commits. Open a connection, begin a transaction on it, and bind "
                            "the session to that connection: `AsyncSession(bind=conn, "
                            "join_transaction_mode=\"create_savepoint\")`.")
            if not bind.in_transaction():
                await agen.aclose()
                raise Wrong(f"{what}: the connection had no transaction when the test began, so "
                            "the session's commit is a real one. Begin the outer transaction "
                            "first, `await conn.begin()`, then bind the session to the "
                            "connection; roll that transaction back after the yield.")
            mode = session.sync_session.join_transaction_mode
            if mode != "create_savepoint":
                await agen.aclose()
                why = {"control_fully": "lets the session's commit() commit the test's outer "
                                        "transaction for real",
                       "rollback_only": "makes a rollback inside the test (a 409 route) roll "
                                        "back the whole outer transaction, and the test's "
                                        "earlier rows with it"}.get(
                    mode, "(the default, conditional_savepoint) makes a rollback inside the test "
                          "(a 409 route) roll back the whole outer transaction, and the test's "
                          "earlier rows with it")
                raise Wrong(f"{what}: join_transaction_mode={mode!r} {why}. Pass "
                            "`join_transaction_mode=\"create_savepoint\"`: each commit or "
                            "rollback of the session then ends a SAVEPOINT, never the outer "
                            "transaction.")
            # the test: a commit, then a failure and a rollback, as a route with a 409 does
            session.add(Artist(name=name))
            await session.commit()
            session.add(Artist(name="AC/DC"))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
            seen = await session.scalar(select(func.count()).where(Artist.name == name))
            if seen != 1:
                await agen.aclose()
                raise Wrong(f"{what}: after a failed commit and a rollback inside the test, the "
                            "row the test had committed before was gone: the rollback ended the "
                            "outer transaction instead of a SAVEPOINT.")
            await _finish(agen, what)
            left = checked_out(engine)
            if left:
                raise Wrong(f"{what}: after the teardown {left} connection(s) were still checked "
                            "out of the pool: close the connection after the yield (`async "
                            "with engine.connect() as conn:` does it).")
            if await _count_artists(engine, name):
                raise Wrong(f"{what}: after the teardown, the artist the test committed was "
                            "still in the database: the outer transaction was committed, not "
                            "rolled back. End it with `await transaction.rollback()` (an "
                            "`async with engine.begin()` block commits when it ends).")
    finally:
        await engine.dispose()
    return ("two tests in a row: each one's commits, and a rollback after a failed commit inside "
            "it, stayed inside SAVEPOINTs; the outer transaction was rolled back and the "
            "connection returned.")


q1 = Exercise(
    "q1", "rolled_back_session", _check_rolled_back_session,
    hints=["Wrap the whole test in a transaction of the fixture's own that the test never "
           "sees: open a connection, begin it yourself, and hand the session that connection. "
           "Rolling that outer transaction back at the end undoes whatever the test committed.",
           "`async with engine.connect() as conn:` and `transaction = await conn.begin()`; bind "
           "the session to that connection: `session = AsyncSession(bind=conn, "
           "join_transaction_mode=\"create_savepoint\", expire_on_commit=False)`, then "
           "`yield session`.",
           "After the yield: `await session.close()` and `await transaction.rollback()` (in a "
           "`finally:`), and the `async with` returns the connection."],
    limit=20.0,
    title="A session whose test is rolled back",
)
