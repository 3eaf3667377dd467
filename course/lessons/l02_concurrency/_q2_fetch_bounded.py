"""q2: at most `limit` queries in flight."""

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
    TRACKS,
    _cancelled_leaves_nothing,
    _failure_reaches_caller,
    _ids,
    _reject_awaitables,
    _Spawned,
    _wrong_names,
)


async def _check_fetch_bounded(fetch_bounded) -> str:
    spawned = _Spawned()
    try:
        await _bounded_case(fetch_bounded, [3, 9, 1, 12, 5, 7, 2, 11, 4, 8], 3, spawned, slow_first=True)
        await _bounded_case(fetch_bounded, [6, 2, 10, 4, 12, 1, 9, 3], 10, spawned, earlier=3)
        await _bounded_case(fetch_bounded, [5, 1, 8], 1, spawned)
        await _bounded_case(fetch_bounded, [], 2, spawned)
        await _failure_reaches_caller(fetch_bounded, "fetch_bounded", (2,), spawned)
        await _bounded_case(fetch_bounded, random.sample(sorted(TRACKS), len(TRACKS)),
                            random.randint(2, 5), spawned)
        await _cancelled_leaves_nothing(fetch_bounded, "fetch_bounded([1, 2, 3], fetch_one, 2)",
                                        (2,), spawned, "Let CancelledError reach the caller.")
    finally:
        await spawned.stop()
    return ("never more than `limit` in flight, every slot kept busy, results in order; "
            "cancelled, it left no query running.")


async def _until_set_or_stuck(done: asyncio.Event, probe: InFlight, total: int) -> bool:
    """Wait until `done` is set (True), or until the answer is stuck (False): this query alone in
    flight, ids still unstarted, for 200 turns of the event loop, where a free slot is refilled
    within a few. Counted in turns, so a busy machine, which only delays them, changes nothing."""
    stuck = 0
    while not done.is_set():
        stuck = stuck + 1 if probe.now == 1 and probe.started < total else 0
        if stuck >= 200:
            return False
        await asyncio.sleep(0)
    return True


async def _bounded_case(fetch_bounded, ids: list[int], limit: int, spawned: _Spawned,
                        slow_first: bool = False, earlier: int | None = None) -> None:
    """One call; `earlier` is the limit of the call before, which a kept semaphore would reuse."""
    probe = InFlight()
    others_done = asyncio.Event()
    finished: list[int] = []
    idle_slots = False

    @probe.track
    async def fetch_one(track_id: int) -> str:
        nonlocal idle_slots
        spawned.note()
        if slow_first and track_id == ids[0]:
            # The slow query holds its slot until every other id is done. A correct answer
            # runs all of them through the other slots meanwhile; one that waits for a whole
            # batch to finish never gets there.
            idle_slots = not await _until_set_or_stuck(others_done, probe, len(ids))
        else:
            await asyncio.sleep(0.002 * (1 + track_id % 3))  # a real query waits here
            if len(finished) == len(ids) - 2:
                others_done.set()
        finished.append(track_id)
        return TRACKS[track_id]

    shown = f"fetch_bounded({_ids(ids)}, fetch_one, limit={limit})"
    got = await call(fetch_bounded, list(ids), fetch_one, limit)
    await _reject_awaitables(got, shown)
    expected = [TRACKS[track_id] for track_id in ids]
    if not isinstance(got, list):
        raise Wrong(f"{shown} should return a list of names, not {type(got).__name__}.")
    if got != expected:
        raise _wrong_names(shown, got, expected, finished)
    if probe.started != len(ids):
        raise Wrong(f"fetch_one ran {probe.started} times for {len(ids)} ids: call it once per id.")
    wanted = min(limit, len(ids))
    if probe.peak > limit:
        raise Wrong(f"{shown} had {probe.peak} queries in flight at once; at most {limit} are "
                    "allowed. The Semaphore must guard the query itself: `async with semaphore: "
                    "return await fetch_one(track_id)`, with one asyncio.Semaphore(limit) created "
                    "once and shared by all. A Semaphore created inside each task limits nothing, "
                    "and create_task(fetch_one(track_id)) starts the query at once, before any "
                    "semaphore is acquired.")
    if probe.peak < wanted:
        detail = ("one at a time: that is a sequential loop" if probe.peak == 1 and wanted > 1
                  else f"at most {probe.peak}")
        if probe.peak == earlier:
            raise Wrong(f"{shown} ran at most {probe.peak} at once, the limit of the call "
                        f"before (limit={earlier}): a semaphore kept from an earlier call "
                        "ignores this call's limit. Create asyncio.Semaphore(limit) inside "
                        "fetch_bounded, on every call, from the limit it is given.")
        raise Wrong(f"{shown} ran {detail}; use all {wanted} slots: start every query at once "
                    f"(gather) and let a shared asyncio.Semaphore({limit}) hold back the rest.")
    if idle_slots:
        raise Wrong(f"{shown} never had more than {limit} in flight, but left slots idle: while "
                    "one slow query ran, the next ids waited for its whole batch to finish. "
                    "Instead of batches of `limit`, start every query and let a shared "
                    "asyncio.Semaphore(limit) admit the next one as soon as any slot frees up.")


q2 = Exercise(
    "q2", "fetch_bounded", no_sleep_on_loop(_check_fetch_bounded, "fetch_bounded"),
    hints=["asyncio.Semaphore(limit) lets at most `limit` tasks inside `async with semaphore:` "
           "at once; the others wait at the door.",
           "Create the semaphore once, in fetch_bounded, and write a small inner coroutine that "
           "does `async with semaphore: return await fetch_one(track_id)`.",
           "`semaphore = asyncio.Semaphore(limit)`; define `async def one(track_id)` as above; "
           "`return await asyncio.gather(*(one(track_id) for track_id in ids))`."],
    title="At most `limit` queries in flight",
)
