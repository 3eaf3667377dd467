"""q1: run queries concurrently, results in input order."""

from __future__ import annotations

import asyncio
import random

from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    Exercise,
    Wrong,
    call,
)
from course.probes import InFlight

from ._common import (
    EMPTY_NAME,
    NAMES,
    TRACKS,
    _cancelled_leaves_nothing,
    _failure_reaches_caller,
    _ids,
    _queries_wanted,
    _reject_awaitables,
    _Spawned,
    _wrong_names,
)


async def _check_fetch_all(fetch_all) -> str:
    spawned = _Spawned()
    # Beyond the fixed cases, every id in a fresh random order: more ids than any batch a
    # learner might pick to fit the small cases.
    shuffled = random.sample(sorted(TRACKS), len(TRACKS))
    try:
        for ids in ([4, 1, 3, 2, 6], [7], [], shuffled, [11, EMPTY_NAME, 9], [3, 8, 3]):
            await _fetch_all_case(fetch_all, ids, spawned)
        await _failure_reaches_caller(fetch_all, "fetch_all", (), spawned)
        await _cancelled_leaves_nothing(fetch_all, "fetch_all([1, 2, 3], fetch_one)", (), spawned,
                                        "Let CancelledError reach the caller.")
    finally:
        await spawned.stop()
    return (f"all queries in flight at once (up to {len(TRACKS)}), results in the order of the "
            "ids; cancelled, it left no query running.")


async def _fetch_all_case(fetch_all, ids: list[int], spawned: _Spawned) -> None:
    probe = InFlight()
    # The first id is the slowest, the last the fastest: they finish in reverse order.
    delays = {track_id: 0.01 * (len(ids) - position) for position, track_id in enumerate(ids)}

    finished: list[int] = []

    @probe.track
    async def fetch_one(track_id: int) -> str:
        spawned.note()
        await asyncio.sleep(delays[track_id])  # a real query waits on the database here
        finished.append(track_id)
        return NAMES[track_id]

    shown = f"fetch_all({_ids(ids)}, fetch_one)"
    got = await call(fetch_all, list(ids), fetch_one)
    await _reject_awaitables(got, shown)
    expected = [NAMES[track_id] for track_id in ids]
    if not isinstance(got, list):
        raise Wrong(f"{shown} should return a list of names, not {type(got).__name__}.")
    if got != expected:
        if "" in expected and got == [name for name in expected if name]:
            raise Wrong(f"{shown} returned {got!r}: the empty name of track {EMPTY_NAME}, \"\", "
                        "was dropped. It is a name like any other: keep every result (`if "
                        "name:` tests truthiness, and \"\" is falsy).")
        raise _wrong_names(shown, got, expected, finished)
    queries = _queries_wanted(ids, probe)
    if probe.started != queries:
        raise Wrong(f"fetch_one ran {probe.started} times for {len(ids)} ids: call it once per id.")
    if queries > 1 and probe.peak == 1:
        raise Wrong(f"{shown} ran the queries one at a time: awaiting each in a loop adds up "
                    "their waits. Start them all, then wait for all: "
                    "`await asyncio.gather(*(fetch_one(i) for i in ids))`.")
    if probe.peak < queries:
        raise Wrong(f"{shown} had at most {probe.peak} queries in flight; all {queries} should "
                    "run at once.")
    if probe.now:
        raise Wrong(f"{shown} returned while {probe.now} queries were still running.")


q1 = Exercise(
    "q1", "fetch_all", no_sleep_on_loop(_check_fetch_all, "fetch_all"),
    hints=["Awaiting fetch_one(i) in a loop runs one query at a time. Create all the coroutines "
           "first, then wait for all of them together.",
           "asyncio.gather(*aws) runs its awaitables concurrently and returns their results in "
           "the order you passed them.",
           "`return await asyncio.gather(*(fetch_one(track_id) for track_id in ids))` (gather "
           "returns a list)."],
    title="Run queries concurrently",
)
