"""q6: release the connection, even when cancelled."""

from __future__ import annotations

import asyncio

from course.apps.pretend_pool import TRACKS, Pool
from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    Exercise,
    LearnerError,
    Wrong,
    call,
    must_raise,
)

from ._common import _reject_awaitables

LEAK_ADVICE = ("Put the query in `try:` and the release in `finally:`, which runs however the "
               "block ends: a result, an error, or a cancellation.")


async def _check_track_name(track_name) -> str:
    pool = Pool()
    got = await call(track_name, pool, 3)
    await _reject_awaitables(got, "track_name(pool, 3)")
    if got != TRACKS[3]:
        raise Wrong(f"track_name(pool, 3) returned {got!r}; expected {TRACKS[3]!r}, what "
                    "conn.fetch_name(3) returns.")
    _released(pool, "after a successful query")

    pool = Pool()
    await must_raise(LookupError, call(track_name, pool, 999),
                     lambda got: f"track_name(pool, 999) returned {got!r}, but the query raised "
                                 "LookupError: let the error reach the caller (release the "
                                 "connection, then re-raise).")
    _released(pool, "when the query raised an error")

    pool = Pool(query_wait=5.0)
    task = asyncio.create_task(call(track_name, pool, 5))
    try:
        await asyncio.wait_for(pool.query_started.wait(), timeout=1.0)
        task.cancel()
        try:
            got = await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # the check itself was cancelled
        else:
            raise Wrong(f"cancelled during its query, track_name returned {got!r} as if nothing "
                        "happened: it swallowed the CancelledError, so timeouts and TaskGroups "
                        "cannot stop it. Release the connection in `finally:` (or catch "
                        "CancelledError, release, and `raise` it again).")
    except TimeoutError:
        raise Wrong("track_name(pool, 5) never started its query on the connection; acquire one "
                    "and call `await conn.fetch_name(track_id)`.") from None
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        busy = pool.released_busy
        await pool.stop_queries()
    if busy:
        raise Wrong("cancelled during its query, track_name gave its connection back while the "
                    "query was still running on it, so the next borrower gets a busy connection. "
                    "The cancellation must stop the query: await conn.fetch_name(...) directly "
                    "(no asyncio.shield, no task left running), and release in `finally:`.")
    if pool.out:
        raise Wrong("cancelled during its query, track_name did not give its connection back. "
                    "`except Exception:` does not catch cancellation (CancelledError is a "
                    f"BaseException). {LEAK_ADVICE}")
    _released(pool, "when it was cancelled")

    pool = Pool(acquire_error=TimeoutError("no connection free within the pool's timeout"))
    try:
        got = await call(track_name, pool, 7)
    except LearnerError as exc:
        if isinstance(exc.__cause__, UnboundLocalError | NameError):
            raise Wrong("when pool.acquire() failed, your code raised "
                        f"{type(exc.__cause__).__name__} instead of the pool's error: its "
                        "`finally:` released a connection that was never acquired. Acquire "
                        "before `try:`, so that `finally:` only guards a connection you hold.") from None
        if not isinstance(exc.__cause__, TimeoutError):
            raise
    else:
        raise Wrong(f"when pool.acquire() failed, track_name returned {got!r}: let the pool's "
                    "error reach the caller.")

    pool = Pool(query_wait=5.0)
    try:
        async with asyncio.timeout(0.05):
            got = await call(track_name, pool, 6)
    except TimeoutError:
        pass
    else:
        await pool.stop_queries()
        raise Wrong(f"under asyncio.timeout(0.05), track_name returned {got!r} and no "
                    "TimeoutError was raised: the swallowed cancellation hid the timeout. "
                    "Let CancelledError propagate.")
    busy = pool.released_busy
    await pool.stop_queries()
    if busy:
        raise Wrong("stopped by a timeout during its query, track_name gave its connection back "
                    "while the query was still running on it. Let the cancellation stop the "
                    "query: no asyncio.shield around it, and release in `finally:`.")
    _released(pool, "when a timeout cancelled it")
    return ("the connection goes back after a result, an error, a cancel and a timeout, and "
            "only once its query has stopped.")


def _released(pool: Pool, when: str) -> None:
    if pool.queries == 0:
        raise Wrong("track_name never queried: acquire a connection and await "
                    "conn.fetch_name(track_id).")
    if pool.double_release:
        raise Wrong(f"track_name released its connection twice {when}: release it once, in "
                    "`finally:`.")
    if pool.out:
        raise Wrong(f"track_name did not give its connection back {when}. {LEAK_ADVICE}")


q6 = Exercise(
    "q6", "track_name", no_sleep_on_loop(_check_track_name, "track_name"),
    hints=["Cancellation arrives as an asyncio.CancelledError at the `await` the task is waiting "
           "on, here `await conn.fetch_name(...)`.",
           "A `finally:` block runs whether the query returns, raises, or is cancelled, and lets "
           "the error (or the cancellation) continue afterwards.",
           "`conn = await pool.acquire()`, then `try: return await conn.fetch_name(track_id)` "
           "`finally: await pool.release(conn)`."],
    title="Release the connection, even when cancelled",
)
