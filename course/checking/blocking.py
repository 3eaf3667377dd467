"""A guard shared by the checks of lessons 01-05: time.sleep() on the event loop's thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from course.checking.checks import LearnerError, Wrong
from course.probes import sleeps_on_loop

SLEPT = ("{function} called time.sleep() on the event loop's thread: that blocks the loop, so "
         "nothing else runs meanwhile, not even the queries it waits for. In async code, wait "
         "with `await asyncio.sleep(seconds)`, or not at all.")


def no_sleep_on_loop(checker: Callable[[Any], Awaitable[str | None]], function: str,
                     message: str = SLEPT) -> Callable[[Any], Awaitable[str | None]]:
    """Wrap a checker so that a time.sleep() made by the answer on the loop's thread is rejected
    with `message`, whatever else the check would have said about it."""

    async def checked(answer: Any) -> str | None:
        text = message.format(function=function)
        with sleeps_on_loop(lambda seconds: Wrong(text)) as slept:
            try:
                remark = await checker(answer)
            except (Wrong, LearnerError):
                if slept:
                    raise Wrong(text) from None
                raise
        if slept:
            raise Wrong(text)
        return remark

    checked.__name__ = checked.__qualname__ = getattr(checker, "__name__", "checked")
    return checked
