"""The explainer turns the common async-database errors a learner meets into one paragraph."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from course.errors import explain, explanation_for


@pytest.fixture(scope="module")
def postgres_dsn() -> str:
    from course.db.postgres import fresh_postgres

    return asyncio.run(fresh_postgres("test_explain")).dsn


def _raised(coro_factory) -> BaseException:
    try:
        asyncio.run(coro_factory())
    except BaseException as exc:  # we want whatever it raises
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


def test_unknown_errors_say_so(capsys) -> None:
    explain(KeyError("x"))
    assert "No course explanation" in capsys.readouterr().out


def test_explain_prints_one_paragraph(capsys) -> None:
    explain(RuntimeError("Event loop is closed"))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("💡 the event loop is closed.")


# --- lesson 04: the array-parameter mistakes of q1 --------------------------------------------

def _fetch_error(dsn: str, sql: str, *args) -> BaseException:
    import asyncpg

    async def attempt() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return _raised(attempt)


@pytest.mark.parametrize(("sql", "value"), [
    ("SELECT customer_id FROM customer WHERE country IN ($1)", ["Canada", "France"]),
    ("SELECT customer_id FROM customer WHERE country IN ($1)", ("Canada", "France")),
    ("SELECT name FROM artist WHERE artist_id IN ($1)", [1, 22]),
])
def test_a_list_bound_to_in(postgres_dsn: str, sql: str, value) -> None:
    exc = _fetch_error(postgres_dsn, sql, value)
    assert type(exc).__name__ == "DataError"
    assert explanation_for(exc).title == "a list bound where one value goes (`IN ($1)`)"
    assert "any($1::text[])" in explanation_for(exc).text


@pytest.mark.parametrize("sql", [
    "SELECT customer_id FROM customer WHERE country = $1::text[]",
    "SELECT customer_id FROM customer WHERE country IN ($1::text[])",
])
def test_a_value_compared_with_an_array(postgres_dsn: str, sql: str) -> None:
    exc = _fetch_error(postgres_dsn, sql, ["Canada"])
    assert "operator does not exist" in str(exc)
    assert explanation_for(exc).title == "one value compared with a whole array"


@pytest.mark.parametrize(("sql", "value"), [
    ("SELECT customer_id FROM customer WHERE country = any($1::int[])", [1]),
    ("SELECT customer_id FROM customer WHERE customer_id = any($1::text[])", ["1"]),
])
def test_an_array_of_the_wrong_element_type(postgres_dsn: str, sql: str, value) -> None:
    exc = _fetch_error(postgres_dsn, sql, value)
    assert "operator does not exist" in str(exc)
    assert explanation_for(exc).title == "two sides of `=` with different types"


def test_a_parameter_of_the_wrong_python_type(postgres_dsn: str) -> None:
    exc = _fetch_error(postgres_dsn, "SELECT name FROM artist WHERE artist_id = $1", "22")
    assert explanation_for(exc).title == "a parameter of the wrong Python type"


# --- course.explain() with no argument --------------------------------------------------------

def test_explain_without_an_error_says_how_to_use_it(capsys, monkeypatch) -> None:
    from course import errors

    monkeypatch.setattr(errors, "_last_error", None)
    monkeypatch.delattr("sys.last_exc", raising=False)
    monkeypatch.delattr("sys.last_value", raising=False)
    explain()
    assert capsys.readouterr().out.startswith("No error to explain yet")


def test_explain_falls_back_on_pythons_last_error(capsys, monkeypatch) -> None:
    """Outside Jupyter's handler (a plain Python prompt), sys.last_value is the last error."""
    from course import errors

    monkeypatch.setattr(errors, "_last_error", None)
    monkeypatch.delattr("sys.last_exc", raising=False)
    monkeypatch.setattr("sys.last_value", RuntimeError("Event loop is closed"), raising=False)
    explain()
    assert capsys.readouterr().out.startswith("💡 the event loop is closed.")


def test_explain_shows_a_course_error_as_its_fix(capsys) -> None:
    from course.errors import CourseError

    explain(CourseError("The data file is missing.", "run `git checkout -- datasets/`."))
    assert capsys.readouterr().out == "⚠️ The data file is missing.\nFix: run `git checkout -- datasets/`.\n"


NOTEBOOK_CELLS = [
    "import course",
    "async def album_title(album_id):\n    return 'x'\n\ntitle = album_title(1)\ntitle.upper()",
    "course.explain()",
    "from course.lessons import l00_welcome as ex\nawait ex.q1.check(lambda ms: 1 / 0)",
    "raise RuntimeError('asyncio.run() cannot be called from a running event loop')",
    "course.explain()",
]


def test_explain_without_argument_explains_the_last_error_of_any_cell(tmp_path, monkeypatch) -> None:
    """In a real kernel: an error raised by the learner's own cell (not by a check) is the one
    `course.explain()` explains, and the newest error wins over an older check's."""
    import nbformat
    from nbclient import NotebookClient

    from course.paths import EXERCISES
    from course.tools.build import QUIET_KERNEL

    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))  # the check records here
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True, extra_arguments=QUIET_KERNEL,
                   resources={"metadata": {"path": str(EXERCISES)}}).execute()
    printed = ["".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)
               for cell in nb.cells]  # a stream, or the text/plain of a displayed 💡 paragraph
    assert printed[2].startswith("💡 a coroutine that was never awaited."), printed[2]
    assert printed[5].startswith("💡 asyncio.run() inside a running loop."), printed[5]


# --- lesson 06: engines and drivers, as the pins raise them -----------------------------------

def test_sync_driver_in_create_async_engine() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    with pytest.raises(Exception) as info:
        create_async_engine("sqlite:///never-created.db")
    assert explanation_for(info.value).title == "create_async_engine() with a sync driver"


def test_plain_postgresql_url_means_psycopg() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    with pytest.raises(ModuleNotFoundError) as info:
        create_async_engine("postgresql://someone@localhost/nothing")
    assert explanation_for(info.value).title == "postgresql:// means psycopg"


def test_missing_greenlet_from_a_sync_engine_on_an_async_driver(tmp_path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import MissingGreenlet

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(MissingGreenlet) as info:
        engine.connect()
    engine.dispose()
    assert explanation_for(info.value).title == "MissingGreenlet from a sync engine"
    # without that evidence in the traceback, the lazy-load explanation stays
    assert "lazy loading" in explanation_for(MissingGreenlet("greenlet_spawn has not been called")).title


def test_connection_left_to_the_garbage_collector() -> None:
    from sqlalchemy.exc import SAWarning

    warning = SAWarning("The garbage collector is trying to clean up non-checked-in connection "
                        "<AdaptedConnection <aiosqlite.core.Connection object at 0x7f00>>, which will be terminated.")
    assert explanation_for(warning).title == "a connection that was never closed"


def test_no_such_table() -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT * FROM track", {}, Exception("no such table: track"))
    assert explanation_for(exc).title == "a table this SQLite database does not have"


# --- lesson 07 ---------------------------------------------------------------------------------

def _session_error(backend: str, work) -> BaseException:
    """The error `work(Session)` raises on a fresh Chinook copy, on the pinned SQLAlchemy."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from course.db.engines import fresh_engine_url

    async def run() -> None:
        engine = create_async_engine(await fresh_engine_url(f"test-explain-07-{backend}", backend))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # aiosqlite's stray coroutine
                await work(async_sessionmaker(engine))
        finally:
            await engine.dispose()

    from course.checking.checks import free_frames

    exc = _raised(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        free_frames(exc)  # the coroutine aiosqlite leaves behind lives in the traceback's frames
        gc.collect()
    return exc


async def _read_after_commit(Session) -> None:
    from course.models import Artist

    async with Session() as session:  # expire_on_commit=True, the default
        artist = await session.get(Artist, 1)
        await session.commit()
        artist.name  # noqa: B018 -- the expired attribute is the point


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_expired_attribute_after_commit(backend: str) -> None:
    exc = _session_error(backend, _read_after_commit)
    # asyncpg raises MissingGreenlet; aiosqlite wraps it in StatementError
    assert type(exc).__name__ == {"sqlite": "StatementError", "postgresql": "MissingGreenlet"}[backend]
    assert "MissingGreenlet" in explanation_for(exc).title


def test_shared_session_from_an_empty_pool() -> None:
    from sqlalchemy import select

    from course.models import Track

    async def shared(Session) -> None:
        async with Session() as session:  # a fresh engine: its pool is empty
            results = await asyncio.gather(*(session.scalar(select(Track.name).where(Track.track_id == i))
                                             for i in (1, 2)), return_exceptions=True)
        raise next(r for r in results if isinstance(r, BaseException))

    exc = _session_error("sqlite", shared)
    assert str(exc).startswith("This session is provisioning a new connection; concurrent operations are not permitted")
    assert explanation_for(exc).title == "one AsyncSession shared between tasks"


def test_await_on_session_add() -> None:
    from course.models import Artist

    async def awaits_add(Session) -> None:
        async with Session() as session:
            await session.add(Artist(name="x"))

    exc = _session_error("sqlite", awaits_add)
    assert str(exc) == "object NoneType can't be used in 'await' expression"
    assert explanation_for(exc).title == "`await` on something that is not awaitable"


def test_begin_after_autobegin() -> None:
    from course.models import Artist

    async def begins_late(Session) -> None:
        async with Session() as session:
            await session.get(Artist, 1)
            async with session.begin():
                pass

    exc = _session_error("sqlite", begins_late)
    assert explanation_for(exc).title == "session.begin() on a session that has already begun"


def test_detached_instance() -> None:
    from course.models import Artist

    async def reads_detached(Session) -> None:
        async with Session() as session:
            artist = await session.get(Artist, 1)
            await session.commit()
        artist.name  # noqa: B018 -- expired, and its session closed

    exc = _session_error("sqlite", reads_detached)
    assert explanation_for(exc).title == "an ORM object used after its session closed"


def test_session_after_a_failed_flush() -> None:
    from course.models import Artist

    async def keeps_going(Session) -> None:
        async with Session() as session:
            session.add(Artist(artist_id=1, name="a duplicate key"))
            try:
                await session.flush()
            except Exception:  # the IntegrityError is expected
                pass
            await session.get(Artist, 2)

    exc = _session_error("sqlite", keeps_going)
    assert explanation_for(exc).title == "a session used after a failed flush"


# --- lesson 08: the loading errors, raised for real on SQLite ----------------------------------

def _loading_error(options, read) -> BaseException:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    import course
    from course.models import Album

    async def run() -> None:
        engine = create_async_engine(await course.fresh_engine_url("test-explain-08"))
        try:
            async with AsyncSession(engine) as session:
                albums = await session.scalars(select(Album).where(Album.album_id == 1).options(*options))
                read(albums)
        finally:
            await engine.dispose()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # aiosqlite's un-awaited cursor()
        exc = _raised(run)
        gc.collect()
    return exc


def test_lazy_load_on_aiosqlite_is_missing_greenlet() -> None:
    exc = _loading_error([], lambda albums: albums.one().tracks)
    assert type(exc).__name__ == "StatementError"  # aiosqlite wraps it
    assert "MissingGreenlet" in explanation_for(exc).title


def test_joinedload_without_unique() -> None:
    from sqlalchemy.orm import joinedload

    from course.models import Album

    exc = _loading_error([joinedload(Album.tracks)], lambda albums: albums.all())
    assert explanation_for(exc).title == "joinedload() of a collection without unique()"


def test_raiseload() -> None:
    from sqlalchemy.orm import raiseload

    exc = _loading_error([raiseload("*")], lambda albums: albums.one().artist)
    assert str(exc) == "'Album.artist' is not available due to lazy='raise'"
    assert explanation_for(exc).title == "a lazy load refused by lazy='raise' or raiseload()"


# --- lesson 09 ---------------------------------------------------------------------------------

def _request_error(app) -> BaseException:
    import httpx

    async def send() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/")

    return _raised(send)


def test_asgi_transport_without_lifespan() -> None:
    from fastapi import FastAPI, Request

    async def root(request: Request) -> None:
        request.state.sessionmaker  # noqa: B018 -- the lifespan never ran

    root.__annotations__ = {"request": Request, "return": None}  # this module's are strings
    app = FastAPI()
    app.get("/")(root)
    assert explanation_for(_request_error(app)).title == "the app's lifespan did not run for this request"


def test_on_event_deprecation() -> None:
    from fastapi import FastAPI

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FastAPI().on_event("startup")(lambda: None)
    assert explanation_for(caught[0].message).title == "@app.on_event is deprecated"


def test_testclient_warning_text() -> None:
    message = DeprecationWarning("Using `httpx` with `starlette.testclient` is deprecated; install `httpx2` instead.")
    assert explanation_for(message).title == "Starlette's TestClient"


def test_unique_violation_and_pending_rollback() -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError, PendingRollbackError
    from sqlalchemy.orm import Session

    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (name TEXT UNIQUE)"))
        conn.execute(text("INSERT INTO t VALUES ('a')"))
    with Session(engine) as session:
        with pytest.raises(IntegrityError) as info:
            session.execute(text("INSERT INTO t VALUES ('a')"))
            session.flush()
        assert explanation_for(info.value).title == "the database refused a write (a constraint)"
    pending = PendingRollbackError("This Session's transaction has been rolled back due to a previous exception during flush.")
    assert explanation_for(pending).title == "a session used after a failed flush"


def test_response_validation_error_of_a_lazy_load_and_of_none() -> None:
    from fastapi.exceptions import ResponseValidationError

    lazy = ResponseValidationError([{"type": "get_attribute_error", "loc": ("response", "tracks"),
                                     "msg": "Error extracting attribute: MissingGreenlet: greenlet_spawn has not been called"}])
    assert "MissingGreenlet" in explanation_for(lazy).title
    none = ResponseValidationError([{"type": "model_attributes_type", "loc": ("response",),
                                     "msg": "Input should be a valid dictionary or object", "input": None}])
    assert explanation_for(none).title == "the route returned something its response model cannot describe"


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
    assert explanation_for(info.value).title == "joinedload() of a collection without unique()"
