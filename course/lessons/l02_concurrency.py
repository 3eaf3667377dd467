"""Checks for exercises/02-concurrency-workbook.ipynb.

No database: each check passes the learner a pretend query (`fetch_one`) that waits on the event
loop like a real one, and watches it with probes: how many calls were in flight at once
(InFlight), whether a call was cancelled, whether the loop was blocked (LoopWitness). No check
compares wall-clock times.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    FORGOT_AWAIT,
    Exercise,
    LearnerError,
    TooBusy,
    Wrong,
    call,
    must_raise,
)
from course.probes import InFlight, LoopWitness

# A little of Chinook, copied here so that the checks need no database.
TRACKS = {
    1: "For Those About To Rock (We Salute You)", 2: "Balls to the Wall", 3: "Fast As a Shark",
    4: "Restless and Wild", 5: "Princess of the Dawn", 6: "Put The Finger On You",
    7: "Let's Get It Up", 8: "Inject The Venom", 9: "Snowballed", 10: "Evil Walks",
    11: "C.O.D.", 12: "Breaking The Rules",
}
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


# --- q1: run queries concurrently, results in input order -----------------------------------

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


# --- q2: at most `limit` queries in flight ----------------------------------------------------

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


# --- q3: a deadline that really cancels ---------------------------------------------------

class _Failed(LookupError):
    """The failure a q3 query raises on purpose."""


async def _check_with_timeout(with_timeout) -> str:
    spawned = _Spawned()
    try:
        return await _timeout_cases(with_timeout, spawned)
    finally:
        await spawned.stop()


async def _timeout_cases(with_timeout, spawned: _Spawned) -> str:
    fast_probe, slow_probe = InFlight(), InFlight()

    @fast_probe.track
    async def fast_query() -> str:
        spawned.note()
        await asyncio.sleep(0.005)
        return TRACKS[3]

    @slow_probe.track
    async def slow_query() -> str:
        spawned.note()
        await asyncio.sleep(0.5)  # far beyond the 0.05 s deadline the check gives
        return "(a late answer)"

    got = await call(with_timeout, fast_query, 1.0, "(timed out)")
    await _reject_awaitables(got, "with_timeout(fast_query, 1.0, '(timed out)')")
    if got != TRACKS[3]:
        raise Wrong(f"with_timeout(fast_query, 1.0, '(timed out)') returned {got!r}; the query "
                    f"answers {TRACKS[3]!r} well within the deadline, so return its result.")
    if fast_probe.started != 1:
        raise Wrong(f"coro_fn ran {fast_probe.started} times; call it once.")

    try:
        got = await call(with_timeout, slow_query, 0.05, "(timed out)")
    except LearnerError as exc:
        if isinstance(exc.__cause__, TimeoutError):
            raise Wrong("with_timeout(slow_query, 0.05, '(timed out)') raised TimeoutError: catch "
                        "it and return `default` instead.") from None
        raise
    await _reject_awaitables(got, "with_timeout(slow_query, 0.05, '(timed out)')")
    if slow_probe.now:
        for _ in range(5):  # a cancellation requested but not awaited lands within a few turns
            await asyncio.sleep(0)
        if slow_probe.cancelled:
            raise Wrong("with_timeout returned the default while the slow query was still "
                        "running: task.cancel() only requests the cancellation, which lands "
                        "later. Await the cancelled task (it then raises CancelledError; "
                        "suppress that) before returning, or let asyncio.timeout (or "
                        "asyncio.wait_for) cancel it and wait for it.")
        raise Wrong("with_timeout returned the default while the slow query was still running: "
                    "it keeps its connection and its work, unobserved. asyncio.wait(timeout=...) "
                    "only stops waiting, and asyncio.shield protects the work from "
                    "cancellation; use asyncio.timeout (or asyncio.wait_for), which cancels it.")
    if got == "(a late answer)":
        raise Wrong("with_timeout(slow_query, 0.05, '(timed out)') waited for the slow query to "
                    "finish: no deadline was applied. Wrap the await in "
                    "`async with asyncio.timeout(seconds):`.")
    if got != "(timed out)":
        raise Wrong(f"with_timeout(slow_query, 0.05, '(timed out)') returned {got!r}; expected "
                    "the default, '(timed out)'.")
    if slow_probe.cancelled != 1:
        raise Wrong("the slow query was not cancelled; the deadline must cancel the work.")

    async def failing_query() -> str:
        await asyncio.sleep(0)
        raise _Failed("no track 999")

    try:
        got = await call(with_timeout, failing_query, 1.0, "(timed out)")
    except LearnerError as exc:
        if isinstance(exc.__cause__, _Failed):
            pass  # right: only a timeout becomes the default
        else:
            raise
    else:
        await _reject_awaitables(got, "with_timeout(failing_query, 1.0, '(timed out)')")
        raise Wrong(f"a query that failed with LookupError made with_timeout return {got!r}. Only "
                    "a timeout should give the default: catch TimeoutError, not Exception, and "
                    "let other errors reach the caller.")

    async def zero_query() -> int:
        await asyncio.sleep(0)
        return 0

    async def none_query() -> None:
        await asyncio.sleep(0)
        return None  # a real answer: "no such row"

    for query, answer in ((zero_query, 0), (none_query, None)):
        got = await call(with_timeout, query, 1.0, -1)
        if got != answer:
            raise Wrong(f"a query that answered {answer!r} in time made with_timeout return "
                        f"{got!r}. Return the result as it is, even when it is falsy or None "
                        "(`result or default` and `if result is None` turn real answers into "
                        "the default): return from inside the `try`.")
    await _returns_promptly(with_timeout, spawned)
    await _lets_cancellation_through(with_timeout, spawned)

    async def own_timeout_query() -> str:
        await asyncio.sleep(0)
        raise TimeoutError("the driver's own command timeout")

    try:
        got = await call(with_timeout, own_timeout_query, 30.0, "(timed out)")
    except LearnerError as exc:
        if not isinstance(exc.__cause__, TimeoutError):
            raise
    else:
        await _reject_awaitables(got, "with_timeout(own_timeout_query, 30.0, '(timed out)')")
        raise Wrong(f"a query that raised a TimeoutError of its own at once, long before your 30 s "
                    f"deadline, made with_timeout return {got!r}: an `except TimeoutError:` "
                    "around asyncio.timeout (or wait_for) also catches the work's own "
                    "TimeoutError. Give the default only when your deadline expired: `async with "
                    "asyncio.timeout(seconds) as deadline:`, and in the `except TimeoutError:` "
                    "return default `if deadline.expired()`, else `raise`.")
    return ("the default on a timeout, with the slow query cancelled; errors pass through, the "
            "query's own TimeoutError included.")


async def _first_of(task: asyncio.Future[Any], event: asyncio.Event) -> None:
    """Wait until the task ends or the event is set, whichever comes first."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _returns_promptly(with_timeout, spawned: _Spawned) -> None:
    """A quick answer under a long deadline must come back at once, not when the deadline ends.

    Counted in turns of the event loop, not in seconds."""
    answered = asyncio.Event()

    async def quick_query() -> str:
        spawned.note()
        await asyncio.sleep(0)
        answered.set()
        return TRACKS[3]

    outer = asyncio.ensure_future(call(with_timeout, quick_query, 5.0, "(timed out)"))
    try:
        await _first_of(outer, answered)
        for _ in range(100):  # a correct answer needs a handful of turns
            if outer.done():
                break
            await asyncio.sleep(0)
        if not outer.done():
            raise Wrong("with_timeout(quick_query, 5.0, ...) was still waiting after the query had "
                        "answered: it sits out the whole deadline. Await the query itself inside "
                        "`async with asyncio.timeout(seconds):`, so the answer comes back at once.")
    finally:
        if not outer.done():
            outer.cancel()
        await asyncio.wait([outer])


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


async def _lets_cancellation_through(with_timeout, spawned: _Spawned) -> None:
    """When the caller cancels with_timeout, the CancelledError must reach the caller."""
    started = asyncio.Event()

    async def waiting_query() -> str:
        spawned.note()
        started.set()
        await asyncio.sleep(10)
        return "(a late answer)"

    await _cancelled_from_outside(
        call(with_timeout, waiting_query, 5.0, "(timed out)"), started, "with_timeout",
        "Catch TimeoutError only; a cancellation from outside must reach the caller.")


q3 = Exercise(
    "q3", "with_timeout", no_sleep_on_loop(_check_with_timeout, "with_timeout"),
    hints=["`async with asyncio.timeout(seconds):` cancels the work inside it when the deadline "
           "passes, and raises TimeoutError at the end of the block.",
           "Put `return await coro_fn()` inside the `async with`, and catch TimeoutError (only "
           "that) around it. coro_fn may raise a TimeoutError of its own: `deadline.expired()` "
           "tells yours from it.",
           "`try:` / `async with asyncio.timeout(seconds) as deadline: return await "
           "coro_fn()` / `except TimeoutError:` return default if `deadline.expired()`, "
           "else `raise` (the TimeoutError was coro_fn's own)."],
    title="A deadline that really cancels",
)


# --- q4: a blocking call off the loop -----------------------------------------------------

BLOCKING_SECONDS = 0.5  # how long the synchronous call holds the loop when run on it


async def _check_lookup_without_blocking(lookup_without_blocking) -> str:
    witness = LoopWitness(lookup_without_blocking)
    ran_in: list[bool] = []  # for each call: did it run on the event loop's thread?

    def blocking_lookup(track_id: int) -> str:
        ran_in.append(witness.on_loop_thread())
        if ran_in[-1]:
            time.sleep(BLOCKING_SECONDS)  # a synchronous driver call: it holds the loop's thread
        else:
            witness.wait_in_thread()  # a synchronous call in a worker: is the loop still free?
        return TRACKS[track_id]

    try:
        got = await call(lookup_without_blocking, blocking_lookup, 5)
    except LearnerError as exc:
        if ran_in and ran_in[0] and isinstance(exc.__cause__, TypeError):
            raise Wrong("you called blocking_fn(arg) yourself, on the event loop's thread, "
                        "then handed its result to to_thread. Pass the function and its "
                        "argument separately: `await asyncio.to_thread(blocking_fn, arg)`.") from None
        raise
    if not ran_in:
        await _reject_awaitables(got, "lookup_without_blocking(blocking_lookup, 5)")
        raise Wrong("blocking_fn was never called: run blocking_fn(arg) and return its result.")
    if ran_in[0]:
        raise Wrong("blocking_fn ran on the event loop's thread, so it blocked the loop for "
                    f"{BLOCKING_SECONDS:g} s: no other task could run. Run it in a worker thread "
                    "and await that: `await asyncio.to_thread(blocking_fn, arg)`.")
    if witness.held:  # seen on the loop's thread, not guessed from a late timer
        raise Wrong("blocking_fn ran in another thread, but waiting for it blocked the event loop "
                    "(thread.join(), future.result() and time.sleep() wait without awaiting). Await it "
                    "instead: "
                    "`await asyncio.to_thread(blocking_fn, arg)`.")
    if len(ran_in) != 1:
        raise Wrong(f"blocking_fn ran {len(ran_in)} times; call it once.")
    if got != TRACKS[5]:
        raise Wrong(f"lookup_without_blocking(blocking_lookup, 5) returned {got!r}; expected what "
                    f"blocking_fn returns, {TRACKS[5]!r}.")
    if witness.busy:
        raise TooBusy()
    return "the blocking call ran in a worker thread, and the loop stayed free meanwhile."


q4 = Exercise(
    "q4", "lookup_without_blocking", _check_lookup_without_blocking,
    hints=["Calling blocking_fn(arg) directly in a coroutine holds the event loop's thread until "
           "it returns.",
           "asyncio.to_thread(func, *args) runs func(*args) in a worker thread; awaiting it lets "
           "the loop run other tasks meanwhile.",
           "`return await asyncio.to_thread(blocking_fn, arg)`: the function and its argument, "
           "separately."],
    title="Move a blocking call off the loop",
)


# --- q5: keep every success when some queries fail ----------------------------------------

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


# --- q6: release the connection, even when cancelled ---------------------------------------

class Connection:
    """A pretend connection: `await conn.fetch_name(track_id)` is its one query."""

    def __init__(self, pool: Pool, number: int) -> None:
        self._pool = pool
        self.number = number
        self.running = 0  # queries in flight on this connection

    async def fetch_name(self, track_id: int) -> str:
        self._pool.queries += 1
        self._pool.query_started.set()
        self.running += 1
        task = asyncio.current_task()
        if task is not None:
            self._pool.query_tasks.add(task)
        try:
            await asyncio.sleep(self._pool.query_wait)
        finally:
            self.running -= 1
        if track_id not in TRACKS:
            raise LookupError(f"no track {track_id}")
        return TRACKS[track_id]

    def __repr__(self) -> str:
        return f"<Connection {self.number}>"


class Pool:
    """A pretend pool: `await pool.acquire()` lends a connection, `await pool.release(conn)`
    takes it back. `out` counts the connections lent and not yet given back."""

    def __init__(self, query_wait: float = 0.005, acquire_error: Exception | None = None) -> None:
        self.query_wait = query_wait
        self.acquire_error = acquire_error  # raised by acquire(), like a pool's timeout
        self.query_started = asyncio.Event()
        self.queries = 0
        self.lent: set[Connection] = set()
        self.double_release = False
        self.released_busy = False  # given back while a query still ran on it
        self.query_tasks: set[asyncio.Task[Any]] = set()
        self._made = 0

    async def acquire(self) -> Connection:
        await asyncio.sleep(0)
        if self.acquire_error is not None:
            raise self.acquire_error
        self._made += 1
        conn = Connection(self, self._made)
        self.lent.add(conn)
        return conn

    async def release(self, conn: Connection) -> None:
        await asyncio.sleep(0)
        if conn not in self.lent:
            self.double_release = True
        if conn.running:
            self.released_busy = True
        self.lent.discard(conn)

    @property
    def out(self) -> int:
        return len(self.lent)

    async def stop_queries(self) -> None:
        """Cancel any query an answer left running (a shielded one), so none outlives the check."""
        left = [t for t in self.query_tasks if not t.done() and t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)


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
