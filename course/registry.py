"""Every lesson of the course, named once: its number and slug, and the files derived from them.

    lesson("04").solution      # solutions/04-asyncpg-solution.ipynb
    by_module("course.lessons.l04_asyncpg").number   # "04"

To add a lesson, append its slug to SLUGS; tests/test_repo.py then asks for its files."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from course.paths import EXERCISES, NOTEBOOKS, SOLUTIONS

SLUGS = (
    "welcome",
    "asyncio-basics",
    "concurrency",
    "aiosqlite",
    "asyncpg",
    "asyncpg-bulk-and-types",
    "sqlalchemy-core-async",
    "orm-sessions",
    "relationships-and-loading",
    "fastapi-in-process",
    "performance-and-scale",
    "testing-and-capstone",
)


@dataclass(frozen=True)
class Lesson:
    """One lesson: `number` "04" and `slug` "asyncpg" name all five of its files."""

    number: str
    slug: str

    @property
    def stem(self) -> str:
        """"04-asyncpg": the lesson notebook's name without .ipynb."""
        return f"{self.number}-{self.slug}"

    @property
    def notebook(self) -> Path:
        return NOTEBOOKS / f"{self.stem}.ipynb"

    @property
    def workbook(self) -> Path:
        return EXERCISES / f"{self.stem}-workbook.ipynb"

    @property
    def solution(self) -> Path:
        return SOLUTIONS / f"{self.stem}-solution.ipynb"

    @property
    def module(self) -> str:
        """"l04_asyncpg": the name of its check module and of its corpus module."""
        return f"l{self.number}_{self.slug.replace('-', '_')}"

    @property
    def check_module(self) -> str:
        return f"course.lessons.{self.module}"

    @property
    def corpus_module(self) -> str:
        return f"tests.corpus.{self.module}"

    def checks(self) -> ModuleType:
        """The imported check module, which declares the lesson's exercises."""
        return importlib.import_module(self.check_module)


LESSONS = tuple(Lesson(f"{index:02d}", slug) for index, slug in enumerate(SLUGS))


def lesson(number: str) -> Lesson:
    """The lesson numbered `number` ("04"); LookupError if there is none."""
    for found in LESSONS:
        if found.number == number:
            return found
    raise LookupError(f"no lesson {number!r}: the course has {', '.join(n.number for n in LESSONS)}")


def by_module(name: str) -> Lesson:
    """The lesson of a check or corpus module ("course.lessons.l04_asyncpg", "l04_asyncpg"), or
    of a module inside a check package ("course.lessons.l11_testing_and_capstone.capstone")."""
    for found in LESSONS:
        if name in (found.module, found.check_module, found.corpus_module) \
                or name.startswith(found.check_module + "."):
            return found
    raise LookupError(f"{name!r} is not the module of a lesson in course/registry.py")
