"""The explainer turns the async-database errors of design section 1 into one paragraph."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from course.errors import explain, explanation_for


@pytest.fixture(scope="module")
def postgres_dsn() -> str:
    from course.postgres import fresh_postgres

    return asyncio.run(fresh_postgres("test_explain")).dsn


def _raised(coro_factory) -> BaseException:
    try:
        asyncio.run(coro_factory())
    except BaseException as exc:  # noqa: BLE001 -- we want whatever it raises
        return exc
    raise AssertionError("nothing was raised")


def test_asyncio_run_inside_a_running_loop() -> None:
    async def inner() -> None:
        coro = asyncio.sleep(0)
        try:
            asyncio.run(coro)
        finally:
            coro.close()

    assert explanation_for(_raised(inner)).title == "asyncio.run() inside a running loop"


def test_never_awaited_warning_text() -> None:
    async def work() -> None: ...

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        work()
        gc.collect()
    message = RuntimeWarning(str(caught[0].message))
    assert explanation_for(message).title == "a coroutine that was never awaited"


def test_missing_greenlet() -> None:
    from sqlalchemy.exc import MissingGreenlet

    assert "MissingGreenlet" in explanation_for(MissingGreenlet("greenlet_spawn has not been called")).title


def test_another_operation_in_progress() -> None:
    from asyncpg.exceptions import InterfaceError

    exc = InterfaceError("cannot perform operation: another operation is in progress")
    assert explanation_for(exc).title == "one asyncpg connection used by two tasks at once"


def test_shared_async_session() -> None:
    from sqlalchemy.exc import InvalidRequestError

    exc = InvalidRequestError("This session is provisioning a new connection; concurrent operations are not permitted")
    exc.code = "isce"
    assert explanation_for(exc).title == "one AsyncSession shared between tasks"


def test_isce_is_matched_as_a_word_only() -> None:
    assert explanation_for(ValueError("miscellaneous failure")) is None


def test_queue_pool_limit() -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    engine = create_engine("sqlite://", pool_size=1, max_overflow=0, pool_timeout=0.01,
                           poolclass=__import__("sqlalchemy.pool", fromlist=["QueuePool"]).QueuePool)
    held = engine.connect()
    with pytest.raises(PoolTimeout) as info:
        engine.connect().execute(text("select 1"))
    held.close()
    assert explanation_for(info.value).title == "the connection pool is exhausted"


def test_asyncpg_pool_acquire_timeout(postgres_dsn: str) -> None:
    import asyncpg

    async def exhaust() -> None:
        async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1) as pool:
            async with pool.acquire():
                await pool.acquire(timeout=0.05)

    assert explanation_for(_raised(exhaust)).title == "the connection pool is exhausted"


def test_event_loop_is_closed() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(coro)
    coro.close()
    assert explanation_for(info.value).title == "the event loop is closed"


def test_attached_to_a_different_loop() -> None:
    first = asyncio.new_event_loop()
    future = first.create_future()  # belongs to `first`

    async def wait_elsewhere() -> None:
        await future  # awaited from the loop asyncio.run creates

    exc = _raised(wait_elsewhere)
    first.close()
    assert explanation_for(exc).title == "an object used from a different event loop"


def test_joined_collection_without_unique() -> None:
    """Lesson 10's q4: joinedload of a collection, read without .unique()."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session, joinedload

    from course.models import Album, Base

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session, pytest.raises(Exception) as info:
        session.add(Album(album_id=1, title="Let There Be Rock", artist_id=1))
        session.flush()
        session.scalars(select(Album).options(joinedload(Album.tracks))).all()
    assert explanation_for(info.value).title == "joinedload of a collection without unique()"


def test_unknown_errors_say_so(capsys) -> None:
    explain(KeyError("x"))
    assert "No course explanation" in capsys.readouterr().out


def test_explain_prints_one_paragraph(capsys) -> None:
    explain(RuntimeError("Event loop is closed"))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("💡 the event loop is closed.")
