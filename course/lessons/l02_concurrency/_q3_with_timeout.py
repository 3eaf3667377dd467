"""q3: a deadline that really cancels."""

from __future__ import annotations

import asyncio

from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    Exercise,
    LearnerError,
    Wrong,
    call,
)
from course.probes import InFlight

from ._common import TRACKS, _cancelled_from_outside, _first_of, _reject_awaitables, _Spawned


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
