"""Exercises with async-aware checks, progressive hints and the reference solution.

A lesson's check module declares its exercises:

    q1 = Exercise("q1", "mmss", checker=_check_mmss, hints=[...])

and a workbook calls `await ex.q1.check(mmss)`. The checker receives the learner's answer and
uses `call()` to run it; it raises `Wrong("reason")` to reject it, and may return a short
remark for a correct answer. Every outcome prints one deterministic line.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import traceback
import warnings
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any, Literal, get_args

from course import registry
from course.checking import progress
from course.db.postgres import as_course_error
from course.deadline import CheckCancelled, within
from course.errors import CourseError, explanation_for, remember
from course.probes import Heartbeat, LoopWatch, sleeps_on_loop

DEFAULT_LIMIT = 10.0  # seconds; generous, only there so a deadlock cannot hang the notebook

STUB_MESSAGE = "your code here"


class Wrong(Exception):
    """Raised by a checker: the answer is wrong, for the reason given."""


class NeverAwaited(Wrong):
    """The learner's code made a coroutine and dropped it; `name` is the coroutine function's
    name, so a lesson can say more about one it knows (SQLAlchemy's `greenlet_spawn`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}() was called but never awaited: put `await` in front of it.")
        self.name = name


class ReturnedCoroutine(Wrong):
    """The learner's function returned a coroutine object instead of awaiting it."""

    def __init__(self) -> None:
        super().__init__("your function returned a coroutine object instead of its result: "
                         "did you forget `await`?")


class NotAttempted(Exception):
    """The learner's code still raises the stub's NotImplementedError."""


class TooBusy(Exception):
    """The machine was too busy for the check to judge: nothing is wrong with the answer yet."""


TOO_BUSY = ("the machine was too busy to judge this (the event loop did not get a turn for "
            "seconds, with none of your code running): run the check again.")


class LearnerError(Exception):
    """The learner's code raised an exception; the original is in __cause__."""


FORGOT_AWAIT = ("did you forget `await`? Your code got a coroutine object where it needed a "
                "result: put `await` in front of the async call.")


Status = Literal["correct", "wrong", "not attempted", "busy", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(frozen=True)
class Outcome:
    exercise: str
    status: Status
    message: str = ""

    def as_data(self, lesson: str) -> dict[str, str]:
        """The verdict as data, stored beside its line: what `make verify` and the tests read."""
        return {"lesson": lesson, "exercise": self.exercise, "status": self.status,
                "message": self.message}

    @property
    def line(self) -> str:
        icon = {"correct": "✅", "wrong": "❌", "not attempted": "⏳", "busy": "⏳",
                "error": "⚠️"}[self.status]
        label = {"correct": "correct", "wrong": "not yet", "not attempted": "not attempted yet",
                 "busy": "not judged", "error": "the check itself failed"}[self.status]
        return f"{icon} {self.exercise} {label}" + (f": {self.message}" if self.message else ".")


def _describe(exc: BaseException) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""  # drop DETAIL: lines
    text = f"{type(exc).__name__}: {first_line}".strip().rstrip(":")
    if len(text) > 160:
        text = text[:157] + "..."
    return text


def free_frames(exc: BaseException) -> None:
    """Let go of the variables a failed answer's traceback holds.

    A coroutine the learner created and never awaited would otherwise live on in those frames
    and warn on stderr later, under some other cell; freed here, its warning is caught.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
    gc.collect(1)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the learner's function, sync or async, and return its result.

    Translates the stub into NotAttempted, a forgotten await into Wrong, and any other
    exception into LearnerError.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except NotImplementedError as exc:
            if str(exc) != STUB_MESSAGE:  # the learner's own NotImplementedError is an answer
                raise LearnerError(_describe(exc)) from exc
            raise NotAttempted(str(exc)) from None
        except (Wrong, NotAttempted, TooBusy):
            raise
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # a real cancellation (the check's deadline, or the check itself)
            free_frames(exc)
            raise Wrong("your function raised CancelledError though nobody cancelled it. "
                        "Awaiting a task you cancelled raises it: wrap that await in "
                        "`contextlib.suppress(asyncio.CancelledError)`, or let "
                        "`asyncio.timeout` do the cancelling for you.") from None
        except Exception as exc:
            item = explanation_for(exc)
            free_frames(exc)
            if item is not None and "never awaited" in item.title:
                raise Wrong(FORGOT_AWAIT) from exc
            if isinstance(exc, asyncio.InvalidStateError) and "not set" in str(exc):
                raise Wrong("a Task's result was read before the task had finished ('Result is "
                            "not set'): `await task` waits for it and gives the result.") from exc
            if isinstance(exc, ValueError) and str(exc).startswith("a coroutine was expected"):
                raise Wrong("asyncio.run() and Runner.run() take a coroutine object: call the "
                            "coroutine function, `main()`, instead of passing `main`.") from exc
            raise LearnerError(_describe(exc)) from exc
        if inspect.iscoroutine(result):
            result.close()
            raise ReturnedCoroutine()
        if isinstance(result, asyncio.Future):
            raise Wrong(f"your function returned a {type(result).__name__} instead of its result: "
                        "did you forget `await`?")
        gc.collect(1)  # a dropped coroutine warns when freed; young generations suffice, and are quick
    for warning in caught:
        if "was never awaited" in str(warning.message):
            quoted = str(warning.message).split("'")
            # the qualified name may read _check.<locals>.fetch: keep the part the learner knows
            name = quoted[1].rsplit(".", 1)[-1] if len(quoted) > 1 else "a coroutine"
            raise NeverAwaited(name)
    return result


async def must_raise(kind: type[BaseException], attempt: Awaitable[Any],
                     wrong: Callable[[Any], str]) -> None:
    """Await `attempt`, a call() of the learner's code that must fail with `kind`.

    If it returns instead, raise Wrong(wrong(what it returned)). Any other error in the
    learner's code reaches the check's caller unchanged, as a LearnerError."""
    try:
        got = await attempt
    except LearnerError as exc:
        if isinstance(exc.__cause__, kind):
            return
        raise
    raise Wrong(wrong(got))


Checker = Callable[[Any], Awaitable[str | None]]


@dataclass
class Exercise:
    """One checked exercise of a workbook.

    Declared in a lesson's check module, it takes its `lesson` from course/registry.py by that
    module's name, and joins the module's `__all__` (and its `dir()`, which tab completion
    lists): a workbook's `ex.` offers the exercises."""

    name: str                   # "q1"
    function: str               # the name the learner defines, for messages and solution()
    checker: Checker
    hints: list[str] = field(default_factory=list)
    limit: float = DEFAULT_LIMIT
    title: str = ""
    lesson: str = ""            # "00"; given only outside a check module (the course's own tests)

    def __post_init__(self) -> None:
        if self.lesson:
            return
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") == __name__:  # past __init__
            frame = frame.f_back
        if frame is None:
            raise LookupError("an Exercise made outside a lesson's check module needs lesson=")
        module = frame.f_globals
        self.lesson = registry.by_module(module["__name__"]).number
        names = module.setdefault("__all__", [])
        if self.name not in names:  # a reloaded module declares it again
            names.append(self.name)
        module["__dir__"] = partial(sorted, names)  # tab completion on `ex.` lists these only

    @property
    def key(self) -> str:
        return f"{self.lesson}.{self.name}"

    async def evaluate(self, answer: Any) -> Outcome:
        """Judge an answer and return the Outcome, printing nothing."""
        if inspect.iscoroutine(answer):
            answer.close()
            return Outcome(self.name, "wrong",
                           f"pass the function itself, `{self.function}`, not a call to it "
                           f"(`{self.function}(...)`).")
        if not callable(answer):
            kind = "None" if answer is None else f"a value of type {type(answer).__name__}"
            return Outcome(self.name, "wrong",
                           f"pass your function `{self.function}` itself; this is {kind}.")
        try:
            with sleeps_on_loop() as slept:  # seen, not timed: time.sleep() on the loop's thread
                async with Heartbeat(interval=0.05, limit=2.0) as beat:
                    with LoopWatch(answer, beat) as watch:
                        # a task of its own: the time limit ends in a verdict, however deep
                        # inside a driver it lands, and clean-up after it is bounded
                        remark = await within(self.checker(answer), self.limit)
        except NotAttempted:
            return Outcome(self.name, "not attempted",
                           f"replace `raise NotImplementedError` in {self.function} with your code.")
        except Wrong as exc:
            return Outcome(self.name, "wrong", str(exc))
        except TooBusy:
            return Outcome(self.name, "busy", TOO_BUSY)
        except LearnerError as exc:
            message = f"your code raised {exc}"
            item = explanation_for(exc.__cause__) if exc.__cause__ else None
            if exc.__cause__ is not None:
                remember(exc.__cause__)  # the newest error, explained or not, for course.explain()
            if item is not None:
                message += f" ({item.title}: `course.explain()` says what to do)"
            return Outcome(self.name, "wrong", message)
        except TimeoutError:
            return self._out_of_time(slept, beat, watch)
        except CheckCancelled:
            return Outcome(self.name, "wrong",
                           "the check was cancelled from inside, neither by its time limit nor "
                           "by you: does your code cancel a task it does not own, such as "
                           "asyncio.current_task()? Cancel only the tasks you created.")
        except CourseError as exc:  # the set-up failed (no free connection, say): not judged
            return Outcome(self.name, "busy", f"{exc.problem} Fix: {exc.fix}")
        except Exception as exc:  # a bug in the check, not in the learner's code
            if (error := as_course_error(exc)) is not None:  # e.g. the server was full for the check
                return Outcome(self.name, "busy", f"{error.problem} Fix: {error.fix}")
            return Outcome(self.name, "error", f"{_describe(exc)}. Please report it.")
        return Outcome(self.name, "correct", remark or "")

    def _out_of_time(self, slept: list[float], beat: Heartbeat, watch: LoopWatch) -> Outcome:
        """The verdict when the time limit expired: ❌ only on what was seen (the learner's
        code holding the loop) or on a machine measured not busy; otherwise not judged."""
        seen = sum(slept) + watch.held  # the learner's code seen on the loop's thread, seconds
        busy = (beat.lateness - seen > 0.3 * self.limit  # the loop lost a third of the time
                or watch.lost > 0.3 * self.limit  # so did the whole process
                or (beat.blocked and seen < 1.0))  # a gap of 2 s or more, none of it the learner's
        if seen >= 1.0 or (slept and not busy):
            return Outcome(self.name, "wrong",
                           f"it did not finish within {self.limit:g} s, and the event loop "
                           "stood still for seconds on the way: is there a time.sleep() or "
                           "another blocking call inside async code?")
        if busy:
            return Outcome(self.name, "busy", TOO_BUSY)
        return Outcome(self.name, "wrong",
                       f"it did not finish within {self.limit:g} s. Is something waiting for "
                       "ever: a lock, a connection never released, an event never set?")

    def check(self, answer: Any) -> PendingCheck:
        """Check an answer, print one line, and record it in your progress: `await` it."""
        return PendingCheck(self, answer)

    async def _check(self, answer: Any) -> None:
        outcome = await self.evaluate(answer)
        if outcome.status != "busy":  # not judged: the last real verdict stands
            progress.record(self.lesson, self.name, outcome.status)
        from course.checking import room  # the live view of the room, only with COURSE_ROOM
        from course.display import markdown_line, show

        # Markdown wraps between words and shows code as code; the data is what tools read
        show(outcome.line, markdown_line(outcome.line), outcome.as_data(self.lesson))
        room.record(self.lesson, self.name, outcome.status, outcome.message)

    def hint(self, n: int = 1) -> None:
        """Show hint n (1 is the gentlest): Markdown in JupyterLab, one line of text elsewhere."""
        from course.display import show

        if not self.hints:
            text = f"💬 {self.name} has no hints; try the solution with {self.name}.solution()."
            show(text, f"#### 💬 {self.name} has no hints\n\nThe reference answer: `ex.{self.name}.solution()`.")
            return
        n = max(1, min(n, len(self.hints)))
        more = f" (next: .hint({n + 1}))" if n < len(self.hints) else ""
        text = f"💬 {self.name} hint {n}/{len(self.hints)}: {self.hints[n - 1]}{more}"
        after = (f"Still stuck? `ex.{self.name}.hint({n + 1})` gives the next one." if n < len(self.hints)
                 else f"That was the last hint; `ex.{self.name}.solution()` shows the answer.")
        show(text, f"#### 💬 {self.name} · hint {n} of {len(self.hints)}\n\n{self.hints[n - 1]}\n\n*{after}*")

    def solution(self) -> None:
        """Show the reference solution from solutions/: highlighted Python in JupyterLab."""
        from course.checking.solutions import solution_source
        from course.display import show

        source = solution_source(self.lesson, self.function)
        if source.startswith("(no solution"):  # says what is missing, in one line
            show(source, f"#### 📖 {self.name} · reference solution\n\n{source}")
            return
        fence = "````" if "```" in source else "```"
        show(source, f"#### 📖 {self.name} · reference solution for `{self.function}`\n\n"
                     f"{fence}python\n{source}\n{fence}")


class PendingCheck:
    """What `ex.qN.check(answer)` gives: the check runs when awaited. Shown without `await`,
    it says so, instead of a puzzling <coroutine object ...> and a warning."""

    def __init__(self, exercise: Exercise, answer: Any) -> None:
        self._exercise = exercise
        self._answer = answer

    def __await__(self) -> Generator[Any, None, None]:
        return self._exercise._check(self._answer).__await__()

    def __repr__(self) -> str:
        name = self._exercise.name
        return (f"⏳ {name} was not checked: put `await` in front, "
                f"`await ex.{name}.check({self._exercise.function})`.")

    def _repr_markdown_(self) -> str:
        from course.display import markdown_line

        return markdown_line(repr(self))


def exercises_of(module: Any) -> list[Exercise]:
    """The exercises a lesson's check module declares, in order."""
    found = [v for v in vars(module).values() if isinstance(v, Exercise)]
    return sorted(found, key=lambda e: (len(e.name), e.name))
