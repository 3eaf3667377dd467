"""Every outcome of a check, on small exercises made here."""

from __future__ import annotations

import asyncio
import time

import pytest

from course.checking import checks, progress
from course.checking.checks import TOO_BUSY, Exercise, Outcome, TooBusy, Wrong, call
from course.errors import explain
from course.paths import SOLUTIONS
from course.probes import Heartbeat, LoopWatch


async def _expect_double(fn) -> str:
    got = await call(fn, 21)
    if got != 42:
        raise Wrong(f"double(21) returned {got!r}; expected 42.")
    return "42."


EX = Exercise("q1", "double", _expect_double, hints=["Multiply.", "By two.", "x * 2"], limit=0.5, lesson="99")


def run(answer) -> tuple[str, str]:
    outcome = asyncio.run(EX.evaluate(answer))
    return outcome.status, outcome.message


def test_correct_sync_and_async() -> None:
    async def double_async(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert run(lambda x: x * 2) == ("correct", "42.")
    assert run(double_async)[0] == "correct"


def test_stub_is_not_attempted() -> None:
    def double(x: int) -> int:
        raise NotImplementedError("your code here")

    status, message = run(double)
    assert status == "not attempted" and "double" in message


def test_wrong_value_gives_the_reason() -> None:
    assert run(lambda x: x + 2) == ("wrong", "double(21) returned 23; expected 42.")


def test_returned_coroutine_means_forgotten_await() -> None:
    async def inner(x: int) -> int:
        return x * 2

    async def double(x: int):
        return inner(x)

    status, message = run(double)
    assert status == "wrong" and "forget `await`" in message


def test_dropped_coroutine_is_reported_by_name() -> None:
    async def double(x: int) -> int:
        asyncio.sleep(0.01)  # the mistake under test
        return x * 2

    status, message = run(double)
    assert status == "wrong" and "sleep() was called but never awaited" in message


def test_coroutine_in_arithmetic_means_forgotten_await() -> None:
    async def value() -> int:
        return 21

    async def double(x: int) -> int:
        return value() * 2

    status, message = run(double)
    assert status == "wrong" and "forget `await`" in message


def test_a_call_instead_of_the_function() -> None:
    async def double(x: int) -> int:
        return x * 2

    status, message = run(double(21))
    assert status == "wrong" and "not a call" in message
    assert run(42) == ("wrong", "pass your function `double` itself; this is a value of type int.")
    assert run(None) == ("wrong", "pass your function `double` itself; this is None.")


def test_learner_exception_is_one_line() -> None:
    status, message = run(lambda x: 1 / 0)
    assert status == "wrong" and message == "your code raised ZeroDivisionError: division by zero"


def judged_timing(exercise: Exercise, answer, monkeypatch) -> tuple[Outcome, tuple[Heartbeat, LoopWatch]]:
    """Evaluate `answer`, and keep what the check measured the loop and the process with: a
    verdict on time may be "busy" only when those measures say the machine was busy."""
    beats: list[Heartbeat] = []
    watches: list[LoopWatch] = []

    class RecordedBeat(Heartbeat):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            beats.append(self)

    class RecordedWatch(LoopWatch):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            watches.append(self)

    monkeypatch.setattr(checks, "Heartbeat", RecordedBeat)
    monkeypatch.setattr(checks, "LoopWatch", RecordedWatch)
    outcome = asyncio.run(exercise.evaluate(answer))
    return outcome, (beats[-1], watches[-1])


def assert_wrong_unless_measured_busy(outcome: Outcome, measured: tuple[Heartbeat, LoopWatch],
                                      limit: float) -> bool:
    """True if judged wrong; False if not judged, which is allowed only when the machine was
    measured busy: the loop lost a third of the limit, or so did the whole process, or the
    loop stood still 2 s with none of the learner's code on it."""
    beat, watch = measured
    if outcome.status == "busy":
        assert (beat.lateness > 0.3 * limit or watch.lost > 0.3 * limit
                or (beat.blocked and watch.held < 1.0)), f"'busy' on a machine measured free: {outcome.line}"
        assert outcome.message == TOO_BUSY
        return False
    assert outcome.status == "wrong", outcome.line
    return True


def test_deadlock_hits_the_time_limit(monkeypatch) -> None:
    async def double(x: int) -> int:
        await asyncio.Event().wait()  # waits for ever
        return x * 2

    outcome, beat = judged_timing(EX, double, monkeypatch)
    if assert_wrong_unless_measured_busy(outcome, beat, EX.limit):
        assert "did not finish within 0.5 s" in outcome.message
        assert "Is something waiting for ever" in outcome.message


def test_a_blocked_loop_that_outlasts_the_limit_is_named() -> None:
    async def double(x: int) -> int:
        time.sleep(3)  # noqa: ASYNC251 -- the mistake under test: far beyond what a busy machine causes
        await asyncio.Event().wait()  # and then it never finishes
        return x * 2

    status, message = run(double)
    assert status == "wrong" and "event loop stood still for seconds" in message


def test_a_dropped_inner_coroutine_is_named_without_its_qualname() -> None:
    async def get_milliseconds() -> int:
        return 5

    async def double(x: int) -> int:
        get_milliseconds()  # the mistake under test
        return x * 2

    status, message = run(double)
    assert status == "wrong" and message.startswith("get_milliseconds() was called"), message


def test_a_bug_in_the_checker_is_not_blamed_on_the_learner() -> None:
    async def broken(fn) -> None:
        raise KeyError("oops")

    outcome = asyncio.run(Exercise("q9", "f", broken, lesson="99").evaluate(lambda: None))
    assert outcome.status == "error" and "Please report it" in outcome.line


def test_every_line_is_one_line() -> None:
    for answer in (lambda x: x * 2, lambda x: x, lambda x: 1 / 0, 42):
        outcome = asyncio.run(EX.evaluate(answer))
        assert "\n" not in outcome.line


def test_check_prints_and_records(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    asyncio.run(_checked(lambda x: x * 2))
    assert capsys.readouterr().out == "✅ q1 correct: 42.\n"
    assert progress.load()["99.q1"]["status"] == "correct"
    asyncio.run(_checked(lambda x: x))
    assert progress.load()["99.q1"]["status"] == "wrong"


async def _checked(answer) -> None:
    await EX.check(answer)


@pytest.mark.parametrize("session", [str(SOLUTIONS / "00-welcome-solution.ipynb"), "notebooks/00-welcome.ipynb"])
def test_lessons_and_solutions_do_not_record(tmp_path, monkeypatch, session: str) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.setenv("JPY_SESSION_NAME", session)
    asyncio.run(_checked(lambda x: x * 2))
    assert progress.load() == {}


def test_a_workbook_records_wherever_the_course_folder_is(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/ada/notebooks/async-databases/exercises/00-welcome-workbook.ipynb")
    asyncio.run(_checked(lambda x: x * 2))
    assert progress.load()["99.q1"]["status"] == "correct"


def test_a_check_without_await_says_so(capsys) -> None:
    pending = EX.check(lambda x: x * 2)
    assert repr(pending) == "⏳ q1 was not checked: put `await` in front, `await ex.q1.check(double)`."
    assert capsys.readouterr().out == ""  # nothing ran


def test_explain_without_argument_explains_the_last_checked_error(capsys) -> None:
    async def double(x: int) -> int:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")

    status, message = run(double)
    assert status == "wrong" and "`course.explain()` says what to do" in message
    explain()
    assert "In a notebook, write `await main()`" in capsys.readouterr().out


def test_corrupt_progress_file_counts_as_empty(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    (tmp_path / "progress.json").write_text("{not json")
    assert progress.load() == {}
    progress.record("99", "q1", "correct")
    assert progress.load()["99.q1"]["status"] == "correct"


def test_hints_reveal_progressively(capsys) -> None:
    EX.hint()
    EX.hint(2)
    EX.hint(99)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["💬 q1 hint 1/3: Multiply. (next: .hint(2))",
                     "💬 q1 hint 2/3: By two. (next: .hint(3))",
                     "💬 q1 hint 3/3: x * 2"]


def test_solution_comes_from_solutions_notebook(capsys) -> None:
    from course.lessons import l00_welcome

    l00_welcome.q1.solution()
    out = capsys.readouterr().out
    assert "def mmss(milliseconds: int) -> str:" in out
    assert "divmod" in out and "SOLUTION" not in out


@pytest.mark.parametrize("limit", [0.2])
def test_blocking_code_is_still_stopped_afterwards(limit: float, monkeypatch) -> None:
    async def slow(fn) -> None:
        await call(fn)

    async def sleepy() -> None:
        await asyncio.sleep(5)

    outcome, beat = judged_timing(Exercise("q2", "sleepy", slow, limit=limit, lesson="99"), sleepy, monkeypatch)
    if assert_wrong_unless_measured_busy(outcome, beat, limit):
        assert "did not finish" in outcome.message


def test_a_multi_line_error_is_reported_on_one_line() -> None:
    from course.checking.checks import Exercise, call

    def answer() -> None:
        raise ValueError("insert violates a constraint\nDETAIL: Key (track_id)=(0) is not present.")

    async def checker(fn) -> str:
        await call(fn)
        return "unreachable"

    outcome = asyncio.run(Exercise("q1", "answer", checker, lesson="99").evaluate(answer))
    assert outcome.status == "wrong" and "\n" not in outcome.line
    assert outcome.line.endswith("your code raised ValueError: insert violates a constraint")


def test_a_failed_answer_leaves_no_never_awaited_warning_behind() -> None:
    async def lookup(x: int) -> int:
        return x

    def double(x: int) -> int:
        pending = lookup(x)  # created, never awaited, and held by the failing frame  # noqa: F841
        raise ValueError("boom")

    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(double) == ("wrong", "your code raised ValueError: boom")
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_a_returned_task_means_forgotten_await() -> None:
    async def double(x: int) -> asyncio.Task[int]:
        async def work() -> int:
            return x * 2

        return asyncio.ensure_future(work())

    assert run(double) == ("wrong", "your function returned a Task instead of its result: did you "
                                    "forget `await`?")


def test_reading_an_unfinished_task_is_explained() -> None:
    async def double(x: int) -> int:
        return asyncio.ensure_future(asyncio.sleep(0, x * 2)).result()

    status, message = run(double)
    assert status == "wrong" and "`await task`" in message


def test_passing_the_function_instead_of_a_coroutine_is_explained() -> None:
    async def double(x: int) -> int:
        async def main() -> int:
            return x * 2

        def script() -> int:
            with asyncio.Runner() as runner:
                return runner.run(main)  # the function, not main()

        return await asyncio.to_thread(script)

    status, message = run(double)
    assert status == "wrong" and "call the coroutine function" in message


def test_a_cancelled_error_nobody_asked_for_is_wrong_not_a_crash() -> None:
    async def double(x: int) -> int:
        task = asyncio.ensure_future(asyncio.sleep(1))
        task.cancel()
        await task  # re-raises the CancelledError of a task the learner cancelled
        return x * 2

    status, message = run(double)
    assert status == "wrong" and "nobody cancelled it" in message


def test_a_real_cancellation_still_cancels_the_check() -> None:
    async def main() -> bool:
        started = asyncio.Event()

        async def double(x: int) -> int:
            started.set()
            await asyncio.sleep(10)
            return x * 2

        check = asyncio.ensure_future(EX.evaluate(double))
        await started.wait()
        check.cancel()
        await asyncio.wait([check])
        return check.cancelled()

    assert asyncio.run(main())


def test_a_notimplementederror_of_the_learners_own_is_an_answer() -> None:
    def double(x: int) -> int:
        raise NotImplementedError("zero is not handled yet")

    status, message = run(double)
    assert status == "wrong" and "zero is not handled yet" in message


async def _too_busy(fn) -> str:
    await call(fn, 21)
    raise TooBusy()


def test_a_machine_too_busy_to_judge_says_so_and_keeps_the_last_verdict(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    asyncio.run(_checked(lambda x: x * 2))
    busy = Exercise("q1", "double", _too_busy, lesson="99")
    asyncio.run(busy._check(lambda x: x * 2))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("⏳ q1 not judged: the machine was too busy to judge this")
    assert "run the check again" in lines[-1]
    assert progress.load()["99.q1"]["status"] == "correct", "a busy machine is nobody's verdict"


def test_set_up_time_is_not_the_learners(tmp_path, monkeypatch) -> None:
    """Course set-up inside not_counted() (starting or cloning a database) does not spend the limit."""
    from course.deadline import not_counted

    async def slow_set_up_then_answer(fn) -> str:
        async with not_counted():
            await asyncio.sleep(0.8)  # longer than the whole 0.5 s limit
        return await _expect_double(fn)

    quick = Exercise("q1", "double", slow_set_up_then_answer, limit=0.5, lesson="99")
    assert asyncio.run(quick.evaluate(lambda x: x * 2)).status == "correct"
    outcome, beat = judged_timing(quick, _never_finishes, monkeypatch)
    assert_wrong_unless_measured_busy(outcome, beat, quick.limit)


async def _never_finishes(x: int) -> int:
    await asyncio.Event().wait()
    return x


def test_a_time_limit_eaten_by_a_starved_loop_is_not_judged() -> None:
    """The loop got too few turns (a machine with load 80, say): the answer is not blamed."""
    async def starved(fn) -> str:
        await call(fn, 21)
        while True:  # the machine, not the answer, holds the loop most of the time
            end = time.perf_counter() + 0.2
            while time.perf_counter() < end:
                pass
            await asyncio.sleep(0)

    slow = Exercise("q1", "double", starved, limit=1.0, lesson="99")
    outcome = asyncio.run(slow.evaluate(lambda x: x * 2))
    assert (outcome.status, outcome.message.split(" (")[0]) == ("busy", TOO_BUSY.split(" (")[0])
