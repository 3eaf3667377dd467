"""What lesson 02's checks share: a little of Chinook, the tasks they spawn, and the judges of results, failures and cancellations."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterable
from typing import Any

from course.apps.pretend_pool import TRACKS
from course.checking.checks import (
    FORGOT_AWAIT,
    LearnerError,
    Wrong,
    call,
)
from course.probes import InFlight

EMPTY_NAME = 13  # a track whose name is "": still a name, which a truthiness test would drop
NAMES = {**TRACKS, EMPTY_NAME: ""}


class _Spawned:
    """The tasks that ran our pretend queries, so that a check can stop any left running."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def note(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)

    async def stop(self) -> None:
        leftovers = [t for t in self.tasks if not t.done() and t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)


async def _reject_awaitables(got: Any, what: str) -> None:
    """Raise Wrong if the answer holds coroutines, Tasks or Futures instead of results."""
    if isinstance(got, dict):
        items = list(got.values())
    elif isinstance(got, list | tuple):
        items = list(got)
    else:
        items = [got]
    pending = [item for item in items if inspect.isawaitable(item)]
    if not pending:
        return
    finished_tasks = all(isinstance(i, asyncio.Future) and i.done() and not i.cancelled() for i in pending)
    for item in pending:
        if inspect.iscoroutine(item):
            item.close()
        elif isinstance(item, asyncio.Future):
            item.cancel()
    futures = [item for item in pending if isinstance(item, asyncio.Future)]
    if futures:
        await asyncio.gather(*futures, return_exceptions=True)
    if finished_tasks and isinstance(got, list | tuple | dict):
        raise Wrong(f"{what} returned Task objects, not their results: after the tasks finish, "
                    "read each one's value with task.result().")
    raise Wrong(f"{what} returned {type(pending[0]).__name__} objects instead of results: "
                f"{FORGOT_AWAIT}")


def _ids(ids: Iterable[int]) -> str:
    return "[" + ", ".join(map(str, ids)) + "]"


def _wrong_names(shown: str, got: list[Any], expected: list[str], finished: list[int]) -> Wrong:
    """Why `got` differs from `expected`; `finished` holds the ids in the order they finished."""
    if sorted(got, key=str) != sorted(expected):
        return Wrong(f"{shown} returned {got!r}; expected {expected!r}.")
    if got == [NAMES[track_id] for track_id in finished]:
        return Wrong(f"{shown} returned the right names in the order the queries finished, not "
                     "in the order of the ids (asyncio.as_completed, or a list appended as they "
                     "finish, does that). asyncio.gather returns results in the order of its "
                     "arguments.")
    return Wrong(f"{shown} returned the right names in another order: {got!r}. Keep the order "
                 "of `ids`, as given: no sorting, no set() and no reversing.")


def _queries_wanted(ids: list[int], probe: InFlight) -> int:
    """One query per id; or one per distinct id, when the answer asked for a repeated id once."""
    return probe.started if probe.started == len(set(ids)) else len(ids)


async def _failure_reaches_caller(fn, name: str, extra: tuple, spawned: _Spawned) -> None:
    """One query of [2, 4, 6] fails with LookupError: fn must fail with it (or with an
    ExceptionGroup holding it), never return it in the list."""
    ids = [2, 4, 6]

    async def fetch_one(track_id: int) -> str:
        spawned.note()
        await asyncio.sleep(0 if track_id == 4 else 0.01)
        if track_id == 4:
            raise LookupError("no track 4 (the check's failing query)")
        return TRACKS[track_id]

    shown = f"{name}({_ids(ids)}, fetch_one{''.join(f', {x}' for x in extra)})"
    try:
        got = await call(fn, list(ids), fetch_one, *extra)
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, LookupError) or (
                isinstance(cause, BaseExceptionGroup) and cause.subgroup(LookupError) is not None):
            return
        raise
    await _reject_awaitables(got, shown)
    errors = [item for item in got if isinstance(item, BaseException)] if isinstance(got, list) else []
    if errors:
        raise Wrong(f"the query for track 4 failed, and {shown} returned its exception in the "
                    f"list, {errors[0]!r}, as if it were a name (gather(..., "
                    "return_exceptions=True) does that). Let the error reach the caller: plain "
                    "`asyncio.gather` raises it, and a TaskGroup raises it in an ExceptionGroup.")
    raise Wrong(f"the query for track 4 failed, yet {shown} returned {got!r}: let the error "
                "reach the caller (plain `asyncio.gather` raises it), do not hide it.")


async def _first_of(task: asyncio.Future[Any], event: asyncio.Event) -> None:
    """Wait until the task ends or the event is set, whichever comes first."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _cancelled_from_outside(run: Awaitable[Any], started: asyncio.Event, what: str,
                                  fix: str) -> None:
    """Cancel `run` once `started` is set: the CancelledError must reach the caller."""
    outer = asyncio.ensure_future(run)
    await _first_of(outer, started)
    outer.cancel()
    await asyncio.wait([outer])
    if not outer.cancelled():
        got = outer.result() if outer.exception() is None else type(outer.exception()).__name__
        raise Wrong(f"when its caller cancelled it, {what} returned {got!r} instead of "
                    f"stopping: it swallowed the CancelledError. {fix}")


async def _cancelled_leaves_nothing(fn, shown: str, extra: tuple, spawned: _Spawned,
                                    fix: str) -> None:
    """Cancel fn([1, 2, 3], fetch_one, *extra) while its queries wait: the CancelledError must
    reach the caller, and no query may go on running."""
    started = asyncio.Event()
    probe = InFlight()

    @probe.track
    async def fetch_one(track_id: int) -> str:
        spawned.note()
        started.set()
        await asyncio.sleep(10)  # the caller gives up long before
        return TRACKS[track_id]

    await _cancelled_from_outside(call(fn, [1, 2, 3], fetch_one, *extra), started, shown, fix)
    for _ in range(10):  # cancelled children finish within a few turns of the loop
        if not probe.now:
            return
        await asyncio.sleep(0)
    raise Wrong(f"when its caller cancelled {shown}, {probe.now} queries went on running: the "
                "tasks you created outlive the call. asyncio.gather and TaskGroup cancel their "
                "children; asyncio.wait and bare create_task do not.")
