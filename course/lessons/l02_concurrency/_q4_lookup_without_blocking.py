"""q4: a blocking call off the loop."""

from __future__ import annotations

import time

from course.checking.checks import (
    Exercise,
    LearnerError,
    TooBusy,
    Wrong,
    call,
)
from course.probes import LoopWitness

from ._common import TRACKS, _reject_awaitables

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
