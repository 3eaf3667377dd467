"""The behaviour probes that checks rely on."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from course.probes import (
    HOSTILE_INPUTS,
    Heartbeat,
    InFlight,
    InjectedFailure,
    LoopWitness,
    StatementCounter,
    checked_out,
    fail_on_call,
    sleeps_on_loop,
)


async def _query(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


def test_in_flight_counts_concurrency_not_time() -> None:
    async def main() -> tuple[int, int]:
        sequential, concurrent = InFlight(), InFlight()
        q1, q2 = sequential.track(_query), concurrent.track(_query)
        for i in range(5):
            await q1(i)
        await asyncio.gather(*(q2(i) for i in range(5)))
        return sequential.peak, concurrent.peak

    assert asyncio.run(main()) == (1, 5)


def test_in_flight_sees_cancellation() -> None:
    async def main() -> InFlight:
        probe = InFlight()
        task = asyncio.create_task(probe.track(asyncio.sleep)(10))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return probe

    probe = asyncio.run(main())
    assert (probe.cancelled, probe.finished, probe.now) == (1, 0, 0)


def test_heartbeat_detects_a_blocked_loop() -> None:
    """A busy machine delays ticks by up to about 0.5 s (a stalled CI runner stops every core for about 0.3 s):
    the default 1 s limit stays clear of that, and real blocking of 1.5 s is well past it."""
    async def main() -> tuple[bool, bool, int]:
        async with Heartbeat() as calm:
            await asyncio.sleep(0.3)
        async with Heartbeat() as stalled:
            time.sleep(1.5)  # noqa: ASYNC251 -- the mistake the heartbeat exists to catch
        return calm.blocked, stalled.blocked, stalled.ticks

    assert asyncio.run(main()) == (False, True, 0)


def _learner_function(source: str, name: str):
    """A function defined in a 'notebook cell' of its own, as a learner's answer is."""
    namespace: dict = {"asyncio": asyncio, "threading": threading}
    exec(compile(source, "<learner-cell>", "exec"), namespace)  # test input
    return namespace[name]


AWAITS_THE_THREAD = """
async def answer(blocking_fn):
    return await asyncio.to_thread(blocking_fn)
"""

JOINS_THE_THREAD = """
async def answer(blocking_fn):
    out = []
    worker = threading.Thread(target=lambda: out.append(blocking_fn()))
    worker.start()
    worker.join()  # waits without awaiting: the loop is held
    return out[0]
"""


@pytest.mark.parametrize(("source", "verdict"), [(AWAITS_THE_THREAD, "free"), (JOINS_THE_THREAD, "held")])
def test_loop_witness_sees_what_holds_the_loop(source: str, verdict: str) -> None:
    answer = _learner_function(source, "answer")

    async def main() -> list[str]:
        witness = LoopWitness(answer)
        assert await answer(witness.wait_in_thread) in ("free", "held")
        return witness.verdicts

    assert asyncio.run(main()) == [verdict]


def test_loop_witness_does_not_blame_the_learner_for_a_stalled_loop() -> None:
    """The loop does not answer, but none of the learner's code holds it: too busy to judge."""
    answer = _learner_function(AWAITS_THE_THREAD, "answer")

    async def main() -> tuple[list[str], bool, bool]:
        witness = LoopWitness(answer, patience=0.5)
        worker = threading.Thread(target=witness.wait_in_thread)
        worker.start()
        worker.join()  # the course's own code holds the loop, as a stalled machine would
        return witness.verdicts, witness.held, witness.busy

    assert asyncio.run(main()) == (["busy"], False, True)


def test_fail_on_call_fails_exactly_the_nth_call() -> None:
    calls = []
    step = fail_on_call(calls.append, 3)
    step(1)
    step(2)
    with pytest.raises(InjectedFailure):
        step(3)
    step(4)
    assert calls == [1, 2, 4]

    async def main() -> None:
        failing = fail_on_call(_query, 1)
        with pytest.raises(InjectedFailure):
            await failing(1)
        assert await failing(2) == 2

    asyncio.run(main())


def test_statement_counter_and_checked_out_on_sqlalchemy(tmp_path) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def main() -> tuple[int, int, int]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}")
        with StatementCounter(engine) as counter:
            async with engine.connect() as conn:
                for i in range(3):
                    await conn.execute(text("SELECT :i"), {"i": i})
                during = checked_out(engine)
        after = checked_out(engine)
        await engine.dispose()
        return counter.count, during, after

    assert asyncio.run(main()) == (3, 1, 0)


def test_hostile_inputs_include_the_classics() -> None:
    assert "x' OR '1'='1" in HOSTILE_INPUTS
    assert any("'" in s and s[0].isalpha() for s in HOSTILE_INPUTS)  # a name with a quote


def test_list_that_breaks_fails_past_its_good_items() -> None:
    from course.probes import InjectedFailure, ListThatBreaks

    lines = ListThatBreaks([1, 2, 3], 2, "the lines")
    assert len(lines) == 3 and lines[0] == 1 and lines[-2] == 2
    with pytest.raises(InjectedFailure):
        list(lines)
    with pytest.raises(InjectedFailure):
        lines[2]


def test_sleeps_on_loop_sees_the_loop_thread_only() -> None:
    async def main() -> tuple[list[float], list[float]]:
        with sleeps_on_loop() as slept:
            time.sleep(0.001)  # noqa: ASYNC251 -- on purpose: the loop's thread
            await asyncio.to_thread(time.sleep, 0.001)  # a worker thread: not counted
        with sleeps_on_loop(lambda seconds: InjectedFailure(f"slept {seconds}")) as refused:
            with pytest.raises(InjectedFailure):
                time.sleep(5)  # noqa: ASYNC251 -- refused at once, without sleeping
        return slept, refused

    slept, refused = asyncio.run(main())
    assert slept == [0.001]
    assert refused == [5]
    assert time.sleep.__module__ == "time"  # put back afterwards
