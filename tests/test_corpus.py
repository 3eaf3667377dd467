"""Every check rejects each known wrong answer with the right words, accepts each known
differently-correct answer, and treats the stub as not attempted. (That each passes its solution is proven by nbval on solutions/ and by
tests/test_repo.py, which reads the stored check lines.)"""

from __future__ import annotations

import asyncio
import gc
import importlib
from types import ModuleType
from typing import Any

import pytest

from course import registry
from course.checking.checks import exercises_of
from tests.corpus import CorrectAnswer, WrongAnswer

LESSONS = [lesson.module for lesson in registry.LESSONS]  # "l00_welcome", ...: the test ids


def checks_of(lesson: str) -> ModuleType:
    return registry.by_module(lesson).checks()


def corpus_of(lesson: str) -> list[WrongAnswer]:
    try:
        module = importlib.import_module(registry.by_module(lesson).corpus_module)
    except ModuleNotFoundError:
        return []
    return [v for v in vars(module).values() if isinstance(v, WrongAnswer)]


def correct_of(lesson: str) -> list[CorrectAnswer]:
    try:
        module = importlib.import_module(registry.by_module(lesson).corpus_module)
    except ModuleNotFoundError:
        return []
    return [v for v in vars(module).values() if isinstance(v, CorrectAnswer)]


CASES = [(lesson, entry) for lesson in LESSONS for entry in corpus_of(lesson)]
RIGHT = [(lesson, entry) for lesson in LESSONS for entry in correct_of(lesson)]


@pytest.fixture(scope="session", autouse=True)  # once per worker: the corpus's answers are
def _imports_frozen():                             # scheduled between other tests
    """Several checks call gc.collect() to finalise what a rejected answer dropped. In this
    process, which has imported every lesson and corpus (about 100 000 objects), each full
    collection walked them all: 0.1-0.2 s apiece, dozens per answer. They are frozen here
    (gc.freeze()), as nothing made at import is ever garbage; what a check or an answer makes
    afterwards is collected exactly as in a learner's kernel."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def judged(exercise: Any, answer: Any) -> Any:
    """The check's outcome, asked again (as its ⏳ line tells a learner to) while it says the
    machine was too busy to judge: up to three times. A busy answer is neither right nor wrong,
    so a verdict is never taken from it and never replaced by one."""
    for _ in range(3):
        outcome = asyncio.run(exercise.evaluate(answer))
        if outcome.status != "busy":
            break
    return outcome


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_has_a_wrong_answer(lesson: str) -> None:
    checks = {ex.name for ex in exercises_of(checks_of(lesson))}
    covered = {entry.exercise for entry in corpus_of(lesson)}
    assert checks, f"{lesson} declares no exercises"
    assert checks <= covered, f"{lesson}: no wrong answer in tests/corpus for {sorted(checks - covered)}"


@pytest.mark.parametrize(("lesson", "entry"), CASES, ids=[f"{lesson}-{e.label}" for lesson, e in CASES])
def test_wrong_answer_is_rejected(lesson: str, entry: WrongAnswer) -> None:
    module = checks_of(lesson)
    outcome = judged(getattr(module, entry.exercise), entry.answer)
    assert outcome.status == "wrong", outcome.line
    assert entry.expect.lower() in outcome.message.lower(), outcome.line


@pytest.mark.parametrize(("lesson", "entry"), RIGHT, ids=[f"{lesson}-{e.label}" for lesson, e in RIGHT])
def test_correct_answer_is_accepted(lesson: str, entry: CorrectAnswer) -> None:
    module = checks_of(lesson)
    exercises = {ex.name for ex in exercises_of(module)}
    assert entry.exercise in exercises, f"{lesson} has no exercise {entry.exercise}"
    outcome = judged(getattr(module, entry.exercise), entry.answer)
    assert outcome.status == "correct", outcome.line


@pytest.mark.parametrize("lesson", LESSONS)
def test_stub_is_not_attempted(lesson: str) -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    async def async_stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for ex in exercises_of(checks_of(lesson)):
        for fn in (stub, async_stub):
            outcome = asyncio.run(ex.evaluate(fn))
            assert outcome.status == "not attempted", outcome.line

