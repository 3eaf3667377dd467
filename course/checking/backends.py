"""A fresh Chinook engine per backend, for the checks that run an exercise on SQLite and PostgreSQL.

    async with fresh_engine("check_06_q1", "postgresql") as engine: ...
    remark = await on_each_backend("check-07-q1-{backend}", cases)   # cases(engine, backend)
    url = await prepared_url("check-09-q2", "sqlite", prepare)        # for an app's own engine

Lessons 06, 07, 08 and 10 use the engines; lessons 09 and 11, whose checks serve an app that
makes its own engine, use the URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from course.db.engines import BACKENDS, Backend, fresh_engine_url
from course.db.postgres import drop_named
from course.deadline import not_counted

T = TypeVar("T")
Prepare = Callable[[AsyncEngine], Awaitable[None]]
NAMES: dict[str, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def backend_name(backend: str) -> str:
    """The backend as a learner reads it: "SQLite" or "PostgreSQL"."""
    return NAMES[backend]


async def drop_url(url: URL) -> None:
    """Drop the PostgreSQL database behind a fresh_engine_url() (a SQLite copy is left as it is)."""
    if url.get_backend_name() == "postgresql":
        await drop_named(url.database or "")


@asynccontextmanager
async def fresh_engine(name: str, backend: Backend, prepare: Prepare | None = None,
                       **options: Any) -> AsyncIterator[AsyncEngine]:
    """A fresh Chinook on `backend`, made ready by `prepare`, as an engine; the engine is
    disposed and a PostgreSQL database dropped afterwards, whatever happens."""
    url = await fresh_engine_url(name, backend)
    engine = create_async_engine(url, **options)
    try:
        if prepare is not None:
            await prepare(engine)
        yield engine
    finally:
        await engine.dispose()
        await drop_url(url)


async def prepared_url(name: str, backend: Backend = "sqlite", prepare: Prepare | None = None) -> URL:
    """A fresh Chinook on `backend`, made ready by `prepare` through an engine disposed at once,
    as a URL: for a check whose app makes its own engine. A PostgreSQL copy stays until the
    next fresh copy of that name replaces it."""
    url = await fresh_engine_url(name, backend)
    if prepare is not None:
        async with not_counted():  # the check's own set-up: never the learner's time
            engine = create_async_engine(url)
            try:
                await prepare(engine)
            finally:
                await engine.dispose()
    return url


async def on_each_backend(name: str, cases: Callable[[AsyncEngine, Backend], Awaitable[T]],
                          prepare: Prepare | None = None,
                          backends: tuple[Backend, ...] = BACKENDS) -> T:
    """Run `cases` on a fresh engine for each backend in turn, SQLite first (most wrong answers
    show there); `{backend}` in `name` is replaced by the backend. The last run's result."""
    results = []
    for backend in backends:
        async with fresh_engine(name.format(backend=backend), backend, prepare) as engine:
            results.append(await cases(engine, backend))
    return results[-1]
