"""A check's time limit ends in the course's own line, wherever it lands: inside a driver's
clean-up, after a cancellation request left behind, in clean-up that is slow or never ends.
And a verdict on time is ❌ only on what was seen; a stalled machine gives "not judged"."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from course import deadline
from course.checking.checks import TOO_BUSY, Exercise, Wrong, call


async def _forever(*args: object) -> None:
    await asyncio.Event().wait()


def _evaluate(checker, answer=_forever, limit: float = 0.3):
    """Evaluate on a fresh loop; also return the count of cancellation requests left on the
    caller's task, which must be 0."""
    exercise = Exercise("q9", "answer", checker, limit=limit, lesson="99")

    async def main():
        outcome = await exercise.evaluate(answer)
        return outcome, asyncio.current_task().cancelling()

    return asyncio.run(main())


def _is_time_line(outcome) -> bool:
    return (outcome.status == "busy" and outcome.message == TOO_BUSY) or (
        outcome.status == "wrong" and "did not finish within 0.3 s" in outcome.message)


class _SlowDriver:
    """A connection whose close() takes a while, and terminates if cancelled meanwhile (as
    asyncpg's Connection.close and Pool.close do)."""

    def __init__(self) -> None:
        self.terminated = False
        self.closed = False

    async def close(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.terminated = True
            raise
        self.closed = True


def test_the_limit_landing_in_a_slow_close_ends_in_a_line() -> None:
    driver = _SlowDriver()

    async def checker(fn) -> None:
        try:
            await call(fn)
        finally:
            await driver.close(0.5)  # clean-up after the limit: still awaited, then the verdict

    outcome, left = _evaluate(checker)
    assert _is_time_line(outcome), outcome.line
    assert driver.closed and left == 0


def test_a_cancellation_inside_a_close_that_is_cancelled_again_ends_in_a_line() -> None:
    driver = _SlowDriver()

    async def checker(fn) -> None:
        try:
            await call(fn)
        finally:
            async with asyncio.timeout(0.1):  # the check's own bound on close, which expires too
                await driver.close(5)

    outcome, left = _evaluate(checker)
    assert _is_time_line(outcome), outcome.line
    assert driver.terminated and left == 0


def test_a_cancellation_request_left_behind_does_not_escape() -> None:
    """Python 3.11's TaskGroup leaves one when a task fails while the group exits; before, the
    time limit then left the check as a bare CancelledError."""

    async def checker(fn) -> None:
        task = asyncio.current_task()
        task.cancel()  # a request whose CancelledError something swallowed, never uncancelled
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
        await call(fn)

    outcome, left = _evaluate(checker)
    assert _is_time_line(outcome), outcome.line
    assert left == 0


def test_a_taskgroup_whose_task_fails_during_its_exit() -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0.05)
        raise ValueError("a lookup failed")

    async def answer() -> None:
        with contextlib.suppress(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fails_later())
                tg.create_task(_forever())
        await _forever()

    outcome, left = _evaluate(lambda fn: call(fn), answer)
    assert _is_time_line(outcome), outcome.line
    assert left == 0


def test_clean_up_that_never_ends_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadline, "GRACE", 0.2)
    refused = 0
    stuck = asyncio.Event()  # set by the test once the verdict is in: the clean-up may stop

    async def checker(fn) -> None:
        nonlocal refused
        try:
            await call(fn)
        finally:
            while not stuck.is_set():  # swallows every cancellation, as a stuck driver may
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    refused += 1

    exercise = Exercise("q9", "answer", checker, limit=0.3, lesson="99")

    async def main() -> None:
        outcome = await exercise.evaluate(_forever)
        assert not stuck.is_set()  # the verdict came while the clean-up was still stuck
        stuck.set()
        assert _is_time_line(outcome), outcome.line
        assert asyncio.current_task().cancelling() == 0 and refused >= 2

    asyncio.run(main())


def test_a_cancellation_from_outside_still_propagates() -> None:
    cleaned = []

    async def checker(fn) -> None:
        try:
            await call(fn)
        finally:
            cleaned.append(True)

    exercise = Exercise("q9", "answer", checker, limit=30, lesson="99")

    async def main() -> None:
        task = asyncio.create_task(exercise.evaluate(_forever))
        await asyncio.sleep(0.2)
        task.cancel()  # the learner's interrupt, say
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True]

    asyncio.run(main())


def test_the_learners_own_timeout_around_a_check_is_theirs() -> None:
    exercise = Exercise("q9", "answer", lambda fn: call(fn), limit=30, lesson="99")

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await exercise.evaluate(_forever)
        assert asyncio.current_task().cancelling() == 0

    asyncio.run(main())


def test_a_task_cancelled_from_inside_is_a_line() -> None:
    async def answer() -> None:
        asyncio.current_task().cancel()  # cancels the check's own task
        await asyncio.sleep(1)

    outcome, left = _evaluate(lambda fn: call(fn), answer, limit=30)
    assert outcome.status == "wrong" and "cancelled from inside" in outcome.message, outcome.line
    assert left == 0


def _stall(seconds: float) -> None:
    """The machine stalls the loop: CPU spent in the course's frame, none of the learner's."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_stalled_loop_is_not_judged() -> None:
    async def checker(fn) -> None:
        _stall(2.5)  # a gap of 2.5 s, with no learner's code on the loop's thread
        await call(fn)

    # an answer in asyncio's code, so nothing on the loop's thread here is the learner's
    outcome, _ = _evaluate(checker, asyncio.Event().wait)
    assert outcome.status == "busy" and outcome.message == TOO_BUSY, outcome.line


def test_the_learners_code_holding_the_loop_is_named() -> None:
    async def answer() -> None:
        end = time.perf_counter() + 3.5
        while time.perf_counter() < end:  # blocks the loop without time.sleep
            pass
        await _forever()

    outcome, _ = _evaluate(lambda fn: call(fn), answer)
    assert outcome.status == "wrong" and "stood still" in outcome.message, outcome.line


def test_a_wrong_answer_inside_the_limit_is_still_wrong() -> None:
    async def checker(fn) -> None:
        raise Wrong("no.")

    outcome, left = _evaluate(checker)
    assert (outcome.status, outcome.message, left) == ("wrong", "no.", 0)
