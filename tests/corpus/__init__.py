"""The wrong-answer corpus: plausible wrong answers that each check must reject.

A corpus module is named like the lesson's check module (l00_welcome.py) and marks each wrong
answer with the exercise it targets and words the explanation must contain:

    @wrong("q1", expect="Pad the seconds")
    def mmss(milliseconds: int) -> str: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WrongAnswer:
    exercise: str
    expect: str
    answer: Callable[..., Any]

    @property
    def label(self) -> str:
        return f"{self.exercise}-{self.answer.__name__}"


def wrong(exercise: str, *, expect: str) -> Callable[[Callable[..., Any]], WrongAnswer]:
    """Mark a function as a wrong answer to `exercise` whose explanation contains `expect`."""

    def mark(fn: Callable[..., Any]) -> WrongAnswer:
        return WrongAnswer(exercise, expect, fn)

    return mark
