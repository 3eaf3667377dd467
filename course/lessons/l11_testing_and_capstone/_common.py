"""What lesson 11's checks share: a fresh database, and driving a fixture the way pytest does."""

from __future__ import annotations

from typing import Any

from course.checking.backends import prepared_url
from course.checking.checks import LearnerError, Wrong, call
from course.checking.races import UNIQUE_NAMES

# --- plumbing ------------------------------------------------------------------------------------

async def _database(name: str, unique_names: bool = True) -> Any:
    from sqlalchemy import text

    async def prepare(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(UNIQUE_NAMES))

    return await prepared_url(name, "sqlite", prepare if unique_names else None)


async def _count_artists(engine: Any, name: str) -> int:
    from sqlalchemy import func, select

    from course.models import Artist

    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).where(Artist.name == name))


def _not_a_generator(what: str, got: Any) -> Wrong:
    return Wrong(f"{what} returned {type(got).__name__}; a fixture with a teardown is an async "
                 "generator: `yield` what the test uses, and put the clean-up after the yield "
                 "(pytest resumes the generator when the test ends).")


async def _first(agen: Any, what: str) -> Any:
    try:
        return await call(anext, agen)
    except LearnerError as exc:
        if isinstance(exc.__cause__, StopAsyncIteration):
            raise Wrong(f"{what} ended without yielding anything: `yield` the object the test "
                        "uses.") from None
        raise


async def _finish(agen: Any, what: str) -> None:
    try:
        await call(anext, agen)
    except LearnerError as exc:
        if isinstance(exc.__cause__, StopAsyncIteration):
            return
        raise
    await agen.aclose()
    raise Wrong(f"{what} yielded twice; a fixture yields once, then cleans up.")
