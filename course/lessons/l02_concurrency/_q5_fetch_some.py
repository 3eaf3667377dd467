"""q5: keep every success when some queries fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    Exercise,
    LearnerError,
    Wrong,
    call,
)
from course.probes import InFlight

from ._common import (
    EMPTY_NAME,
    NAMES,
    _cancelled_leaves_nothing,
    _ids,
    _queries_wanted,
    _reject_awaitables,
    _Spawned,
)

FAILURES: dict[int, Callable[[int], Exception]] = {
    4: lambda track_id: LookupError(f"no track {track_id}"),
    9: lambda track_id: ConnectionResetError("connection reset by peer"),
}


async def _check_fetch_some(fetch_some) -> str:
    spawned = _Spawned()
    try:
        for ids in ([2, 4, 6, 9, 11], [4], [1, EMPTY_NAME, 9], [], [6, 4, 6]):
            await _fetch_some_case(fetch_some, ids, spawned)
        await _fetch_some_cancelled(fetch_some, spawned)
    finally:
        await spawned.stop()
    return ("every success kept, failures skipped, no sibling cancelled; cancelled from outside, "
            "it stopped and left no query running.")


async def _fetch_some_cancelled(fetch_some, spawned: _Spawned) -> None:
    """A failed query is skipped, but a cancellation of fetch_some itself is not a failure."""
    await _cancelled_leaves_nothing(
        fetch_some, "fetch_some([1, 2, 3], fetch_one)", (), spawned,
        "A cancellation is not a failed query: catch Exception, not BaseException, and let "
        "CancelledError reach the caller.")


async def _fetch_some_case(fetch_some, ids: list[int], spawned: _Spawned) -> None:
    probe = InFlight()
    # The successful queries wait until every failing one has failed, then a few turns of the
    # loop more, so that a TaskGroup's cancellation lands while they still wait: counted in
    # turns, not in seconds, so a slow machine changes nothing.
    failures_left = sum(1 for track_id in ids if track_id in FAILURES)
    all_failed = asyncio.Event()
    if not failures_left:
        all_failed.set()

    @probe.track
    async def fetch_one(track_id: int) -> str:
        nonlocal failures_left
        spawned.note()
        if track_id in FAILURES:
            await asyncio.sleep(0)
            failures_left -= 1
            if not failures_left:
                all_failed.set()
            raise FAILURES[track_id](track_id)
        # bounded: a sequential answer never starts the failing queries while this waits.
        # (asyncio.wait, not wait_for: wait_for can swallow a cancellation that arrives as
        # the event is set, on Python 3.11.)
        waiter = asyncio.ensure_future(all_failed.wait())
        try:
            await asyncio.wait([waiter], timeout=0.3)
        finally:
            waiter.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        return NAMES[track_id]

    shown = f"fetch_some({_ids(ids)}, fetch_one)"
    try:
        got = await call(fetch_some, list(ids), fetch_one)
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, BaseExceptionGroup):
            raise Wrong(f"{shown} raised an ExceptionGroup: a TaskGroup cancels every other task "
                        "as soon as one fails. Here each result stands alone: use "
                        "asyncio.gather(..., return_exceptions=True), or catch the error inside "
                        "each task.") from None
        if cause is not None and any(isinstance(cause, type(f(0))) for f in FAILURES.values()):
            left = f", with {probe.now} other queries still running" if probe.now else ""
            raise Wrong(f"{shown} let a failed query's {type(cause).__name__} escape{left}. "
                        "Every failed query is to be skipped, whatever its error. Likely causes: "
                        "catching only some error types in each task (such as LookupError), or "
                        "plain gather, which raises the first error. Collect every outcome with "
                        "asyncio.gather(..., return_exceptions=True) and skip the exceptions (or "
                        "catch Exception inside each task).") from None
        raise
    await _reject_awaitables(got, shown)
    if probe.cancelled:
        raise Wrong(f"{shown} cancelled {probe.cancelled} queries that would have succeeded (a "
                    "TaskGroup does that when one child fails). Let every query finish: "
                    "asyncio.gather(..., return_exceptions=True).")
    if not isinstance(got, dict):
        raise Wrong(f"{shown} should return a dict {{track_id: name}}, not {type(got).__name__}.")
    errors = [v for v in got.values() if isinstance(v, BaseException)]
    if errors:
        raise Wrong(f"{shown} put exception objects in the dict (such as {errors[0]!r}): skip "
                    "the results that are exceptions, `isinstance(result, BaseException)`.")
    expected = {track_id: NAMES[track_id] for track_id in ids if track_id not in FAILURES}
    if EMPTY_NAME in expected and got == {k: v for k, v in expected.items() if v}:
        raise Wrong(f"{shown} returned {got!r}: track {EMPTY_NAME}'s query succeeded with the "
                    "empty name \"\", and your code dropped it. Tell a failure by its exception "
                    "(`isinstance(result, BaseException)`), not by truthiness: \"\" is falsy.")
    if got != expected:
        raise Wrong(f"{shown} returned {got!r}; expected {expected!r}.")
    queries = _queries_wanted(ids, probe)
    if probe.started != queries:
        raise Wrong(f"fetch_one ran {probe.started} times for {len(ids)} ids: call it once per id.")
    if queries > 1 and probe.peak < queries:
        raise Wrong(f"{shown} had at most {probe.peak} queries in flight; run all "
                    f"{queries} at once (gather), not one after another in a loop.")
    if probe.now:
        raise Wrong(f"{shown} returned while {probe.now} queries were still running.")


q5 = Exercise(
    "q5", "fetch_some", no_sleep_on_loop(_check_fetch_some, "fetch_some"),
    hints=["A TaskGroup cancels the other tasks when one fails, and plain gather raises the "
           "first error. You want every outcome, success or failure.",
           "asyncio.gather(*aws, return_exceptions=True) waits for all of them and puts each "
           "exception in the result list, in its place.",
           "`results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)`; "
           "`return {i: r for i, r in zip(ids, results) if not isinstance(r, BaseException)}`."],
    title="Keep every success when some queries fail",
)
