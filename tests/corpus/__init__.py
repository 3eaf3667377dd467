"""The answer corpus: plausible wrong answers that each check must reject, and answers that
are right in another way than the solution's, which each check must accept.

A corpus module is named like the lesson's check module (l00_welcome.py) and marks each wrong
answer with the exercise it targets and words the explanation must contain:

    @wrong("q1", expect="Pad the seconds")
    def mmss(milliseconds: int) -> str: ...

and each differently-correct answer with its exercise:

    @correct("q1")
    def mmss_with_divmod(milliseconds: int) -> str: ...
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


@dataclass(frozen=True)
class CorrectAnswer:
    exercise: str
    answer: Callable[..., Any]

    @property
    def label(self) -> str:
        return f"{self.exercise}-{self.answer.__name__}"


def correct(exercise: str) -> Callable[[Callable[..., Any]], CorrectAnswer]:
    """Mark a function as a right answer to `exercise`, written another way than the solution:
    the check must accept it."""

    def mark(fn: Callable[..., Any]) -> CorrectAnswer:
        return CorrectAnswer(exercise, fn)

    return mark
