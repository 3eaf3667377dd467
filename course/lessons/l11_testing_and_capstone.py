"""Checks for exercises/11-testing-and-capstone-workbook.ipynb.

q1 and q2 drive the learner's fixtures the way pytest does (call the async generator, take what
it yields, let the test run, resume it for the teardown), then look at what is left in the
database. q3 runs the learner's pytest module in a subprocess against the lesson-09 app and
against five copies of it with a planted bug (mutation testing). q4 is the capstone: the course's
own hidden suite, through httpx.ASGITransport with the app's lifespan run by LifespanManager.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.requests import Request

from course.apps.capstone_tools import VARIANTS, take_over_begin, variant_routes
from course.apps.music_store import SessionDep
from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.db.engines import Backend, fresh_engine_url
from course.deadline import not_counted
from course.probes import HOSTILE_INPUTS, checked_out

UNIQUE_NAMES = "CREATE UNIQUE INDEX IF NOT EXISTS artist_name_key ON artist (lower(name))"
BASE = "http://store.test"


# --- plumbing ------------------------------------------------------------------------------------

async def _database(name: str, unique_names: bool = True) -> Any:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = await fresh_engine_url(name)
    if unique_names:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(UNIQUE_NAMES))
        finally:
            await engine.dispose()
    return url


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


# --- q1: a session whose test is rolled back -------------------------------------------------------

async def _check_rolled_back_session(rolled_back_session) -> str:
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

    from course.models import Artist

    url = await _database("check-11-q1")
    engine = take_over_begin(create_async_engine(url))
    what = "rolled_back_session(engine)"
    try:
        for run in (1, 2):  # two tests in a row, as pytest would run them
            name = f"Check band {run} O'Hara \"live\""
            agen = await call(rolled_back_session, engine)
            if isinstance(agen, AsyncSession):
                await agen.close()
                raise _not_a_generator(what, agen)
            if not inspect.isasyncgen(agen):
                raise _not_a_generator(what, agen)
            session = await _first(agen, what)
            if not isinstance(session, AsyncSession):
                await agen.aclose()
                raise Wrong(f"{what} yielded {type(session).__name__}; yield the AsyncSession.")
            bind = session.bind
            if not isinstance(bind, AsyncConnection):
                await agen.aclose()
                raise Wrong(f"{what}: the session is bound to {type(bind).__name__}, so every "
                            "commit of the test takes a connection of its own and really "
                            "commits. Open a connection, begin a transaction on it, and bind "
                            "the session to that connection: `AsyncSession(bind=conn, "
                            "join_transaction_mode=\"create_savepoint\")`.")
            if not bind.in_transaction():
                await agen.aclose()
                raise Wrong(f"{what}: the connection had no transaction when the test began, so "
                            "the session's commit is a real one. Begin the outer transaction "
                            "first, `await conn.begin()`, then bind the session to the "
                            "connection; roll that transaction back after the yield.")
            mode = session.sync_session.join_transaction_mode
            if mode != "create_savepoint":
                await agen.aclose()
                why = {"control_fully": "lets the session's commit() commit the test's outer "
                                        "transaction for real",
                       "rollback_only": "makes a rollback inside the test (a 409 route) roll "
                                        "back the whole outer transaction, and the test's "
                                        "earlier rows with it"}.get(
                    mode, "(the default, conditional_savepoint) makes a rollback inside the test "
                          "(a 409 route) roll back the whole outer transaction, and the test's "
                          "earlier rows with it")
                raise Wrong(f"{what}: join_transaction_mode={mode!r} {why}. Pass "
                            "`join_transaction_mode=\"create_savepoint\"`: each commit or "
                            "rollback of the session then ends a SAVEPOINT, never the outer "
                            "transaction.")
            # the test: a commit, then a failure and a rollback, as a route with a 409 does
            session.add(Artist(name=name))
            await session.commit()
            session.add(Artist(name="AC/DC"))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
            seen = await session.scalar(select(func.count()).where(Artist.name == name))
            if seen != 1:
                await agen.aclose()
                raise Wrong(f"{what}: after a failed commit and a rollback inside the test, the "
                            "row the test had committed before was gone: the rollback ended the "
                            "outer transaction instead of a SAVEPOINT.")
            await _finish(agen, what)
            left = checked_out(engine)
            if left:
                raise Wrong(f"{what}: after the teardown {left} connection(s) were still checked "
                            "out of the pool: close the connection after the yield (`async "
                            "with engine.connect() as conn:` does it).")
            if await _count_artists(engine, name):
                raise Wrong(f"{what}: after the teardown, the artist the test committed was "
                            "still in the database: the outer transaction was committed, not "
                            "rolled back. End it with `await transaction.rollback()` (an "
                            "`async with engine.begin()` block commits when it ends).")
    finally:
        await engine.dispose()
    return ("two tests in a row: each one's commits, and a rollback after a failed commit inside "
            "it, stayed inside SAVEPOINTs; the outer transaction was rolled back and the "
            "connection returned.")


q1 = Exercise(
    "q1", "rolled_back_session", _check_rolled_back_session,
    hints=["`async with engine.connect() as conn:` then `transaction = await conn.begin()`: the "
           "outer transaction, which the test never sees.",
           "Bind the session to that connection: `session = AsyncSession(bind=conn, "
           "join_transaction_mode=\"create_savepoint\", expire_on_commit=False)`, then "
           "`yield session`.",
           "After the yield: `await session.close()` and `await transaction.rollback()` (in a "
           "`finally:`), and the `async with` returns the connection."],
    limit=20.0,
    title="A session whose test is rolled back",
)


# --- q2: the app with the test's session, through dependency_overrides ------------------------------

async def _check_client_with_session(client_with_session) -> str:
    import httpx
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from course.apps import music_store
    from course.models import Artist

    url = await _database("check-11-q2", unique_names=False)  # the app's lifespan adds the index
    engine = take_over_begin(create_async_engine(url))
    app = music_store.create_app(url)
    # the suite already overrides a dependency of its own: the fixture must leave it in place
    app.dependency_overrides[get_settings] = _suite_settings
    what = "client_with_session(app, session)"
    name = "The Check O'Haras \"Trio\""
    early = "The Check's own row"
    received: list[Any] = []

    async def _session_given(given: SessionDep) -> dict:
        received.append(given)  # the very object a route is handed for get_session
        return {}

    app.add_api_route("/_check/session", _session_given, methods=["GET"])
    overrides_before = app.dependency_overrides
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint",
                                   expire_on_commit=False)
            agen = await call(client_with_session, app, session)
            if not inspect.isasyncgen(agen):
                if isinstance(agen, httpx.AsyncClient):
                    await agen.aclose()
                raise _not_a_generator(what, agen)
            client = await _first(agen, what)
            if not isinstance(client, httpx.AsyncClient):
                await agen.aclose()
                raise Wrong(f"{what} yielded {type(client).__name__}; yield the "
                            "httpx.AsyncClient.")
            overrides = {k: v for k, v in app.dependency_overrides.items() if k is not get_settings}
            if music_store.get_session not in overrides:
                await agen.aclose()
                keys = ", ".join(getattr(k, "__name__", repr(k)) for k in overrides) or "nothing"
                raise Wrong(f"{what}: app.dependency_overrides holds {keys}, not the app's own "
                            "get_session. FastAPI looks overrides up by the very function the "
                            "routes depend on: `app.dependency_overrides[get_session] = ...`, "
                            "with get_session imported from the app's module.")
            try:
                try:
                    created = await call(client.post, "/artists",
                                         json={"name": name, "albums": ["One"]})
                except LearnerError as exc:
                    if "unknown url type" in str(exc) or "missing an 'http" in str(exc):
                        raise Wrong(f"{what}: the client could not send POST /artists, a path "
                                    "without a host: give it one, `httpx.AsyncClient(transport="
                                    "..., base_url=\"http://store\")`.") from None
                    raise
                if created.status_code != 201:
                    raise Wrong(f"POST /artists answered {created.status_code} {created.text[:80]}; "
                                "expected 201.")
                seen = await session.scalar(select(Artist.artist_id).where(Artist.name == name))
                if seen is None:
                    raise Wrong(f"{what}: right after POST /artists answered 201, the test's "
                                "session no longer saw the artist: the override closed (or "
                                "rolled back) the test's session after the request. Just `yield "
                                "session`, and leave closing it to the fixture that made it.")
                given = await _session_a_route_gets(client, received)
                if given is not None and given is not session and given.bind is not session.bind:
                    raise Wrong(f"{what}: the requests did not use the test's session: a route "
                                "was handed a session of its own, on another connection than "
                                "the test's, so what it commits is committed for real. The "
                                "override must hand the routes the `session` given to "
                                "client_with_session: `async def override(): yield session`.")
                # between requests the test commits work of its own, as tests do
                session.add(Artist(name=early))
                await session.commit()
                again = await call(client.post, "/artists", json={"name": name.upper()})
                if again.status_code == 201:
                    raise Wrong(f"{what}: a second artist called {name.upper()!r} was accepted "
                                "(201). The unique index on artist names is made by the app's "
                                "lifespan, which did not run: wrap the client in `async with "
                                "LifespanManager(app) as manager:` and give the transport "
                                "`manager.app`.")
                if again.status_code != 409:
                    raise Wrong(f"the second POST of the same name answered {again.status_code}; "
                                "expected 409.")
                kept = await session.scalar(select(func.count())
                                            .where(Artist.name.in_([name, early])))
                own = given is not None and given is not session
                if kept != 2:
                    raise Wrong(f"{what}: after the repeated name answered 409, the test's "
                                f"session saw {kept} of the 2 rows committed before it (the "
                                "artist from POST /artists and a row the test committed "
                                "itself): the 409's rollback ended the test's outer "
                                "transaction, not a SAVEPOINT. " + (
                                    "The route was handed a new session on the test's "
                                    "connection, not the test's `session`; its rollback rolls "
                                    "back the connection's whole transaction. " if own else
                                    "The route did get the test's session, so the override "
                                    "likely rolled it back or ended its transaction. ")
                                + "Hand the routes the test's own session: `async def "
                                "override(): yield session`.")
                if own:
                    raise Wrong(f"{what}: a route was handed a session other than the test's "
                                "`session` (a new one, on the test's connection): the routes "
                                "must use the test's session instead of opening their own. "
                                "`async def override(): yield session`.")
                found = await call(client.get, f"/artists/{seen}")
                if found.status_code != 200 or found.json().get("name") != name:
                    raise Wrong(f"GET /artists/{seen} answered {found.status_code} "
                                f"{found.text[:80]}, after the artist was created.")
            except BaseException:
                await agen.aclose()
                raise
            await _finish(agen, what)
            await session.close()
            await transaction.rollback()
        if await _count_artists(engine, name):
            raise Wrong(f"{what}: the artist created through the app was still in the database "
                        "after the test's transaction was rolled back: the requests did not use "
                        "the test's session but one of their own. The override must hand the "
                        "routes the `session` given to client_with_session.")
        _judge_overrides_left(app, music_store.get_session, what, overrides_before)
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()
    return ("a route was handed the test's own session; what POST /artists committed was seen "
            "by the test and rolled back with it; the lifespan ran (409 on a repeated name), and "
            "after that 409 the rows committed before it were still there; at the end your "
            "override was removed and the one the app already had was kept.")


async def _session_a_route_gets(client: Any, received: list) -> Any:
    """The session object a route is handed for get_session, or None if the probe failed."""
    received.clear()
    try:
        response = await call(client.get, "/_check/session")
    except LearnerError:
        return None
    return received[0] if response.status_code == 200 and received else None


def get_settings() -> dict:
    """A dependency of the test suite's own, which it overrides before each test starts."""
    return {}


def _suite_settings() -> dict:
    return {"database": "test"}


def _judge_overrides_left(app: Any, get_session: Any, what: str, before: dict) -> None:
    """After the teardown, the app's overrides must be the ones it had before: the suite's own.
    `before` is the dict object the app held before the fixture ran."""
    left = dict(app.dependency_overrides)
    if get_session in left:
        raise Wrong(f"{what}: after the teardown, app.dependency_overrides still held the "
                    "override, and the next test would use a closed session: remove yours after "
                    "the yield, in a `finally:` (`app.dependency_overrides.pop(get_session, "
                    "None)`, or put back a copy saved before).")
    if left.get(get_settings) is not _suite_settings:
        seen = ("app.dependency_overrides was the same dict, emptied of it: likely "
                "`app.dependency_overrides.clear()`, which empties the whole dict"
                if app.dependency_overrides is before else
                "app.dependency_overrides was a new dict, without it: likely the whole dict "
                "was replaced (`app.dependency_overrides = {...}`) instead of one key set, or "
                "`.clear()` emptied it before")
        raise Wrong(f"{what}: the app came with an override of its own (for get_settings), and "
                    f"after the teardown it was gone; {seen}. Leave the app as you found it: "
                    "set and remove only your key (`app.dependency_overrides[get_session] = "
                    "...`, then `.pop(get_session, None)`), or save "
                    "`dict(app.dependency_overrides)` before and restore it.")
    if len(left) > 1:
        keys = ", ".join(getattr(k, "__name__", repr(k)) for k in left if k is not get_settings)
        raise Wrong(f"{what}: after the teardown, app.dependency_overrides still held {keys}, "
                    "which the app did not have before: remove what you added.")


q2 = Exercise(
    "q2", "client_with_session", _check_client_with_session,
    hints=["Write an async generator that overrides the session dependency: `async def "
           "test_session(): yield session`, then `app.dependency_overrides[get_session] = "
           "test_session`.",
           "Then the in-process client with the lifespan: `async with LifespanManager(app) as "
           "manager:` and `httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), "
           "base_url=...)`; `yield client` inside both.",
           "Put the whole body in `try:` / `finally: app.dependency_overrides.pop(get_session, "
           "None)`, so the next test gets the app's own dependency back and any override the "
           "app already had stays (`.clear()` would remove those too)."],
    limit=20.0,
    title="The app on the test's session: dependency_overrides",
)


# --- q3: tests scored by mutation ---------------------------------------------------------------

CONFTEST = '''\
"""Fixtures for the music-store tests (lesson 11). The q3 check writes this file beside yours."""

import os
import shutil
import threading
import time

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from course.apps.capstone_tools import store_variant

STORES = os.environ.get("STORE_VARIANTS", "reference").split(",")


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=STORES)
def create_app(request):
    """The lesson-09 store's create_app, or a copy with a planted bug (what q3's check runs)."""
    return store_variant(request.param)


@pytest.fixture
async def client(create_app, tmp_path):
    """The app on its own fresh copy of Chinook, lifespan run, called in-process."""
    database = tmp_path / "chinook.db"
    shutil.copyfile(os.environ["STORE_TEMPLATE"], database)
    app = create_app(f"sqlite+aiosqlite:///{database}")
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://store") as client:
            yield client


@pytest.fixture
def statements():
    """Every SQL statement any engine runs during the test, in order."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture
def blocking_calls(monkeypatch):
    """time.sleep calls made on the event loop's own thread during the test."""
    loop_thread = threading.get_ident()  # anyio runs the tests' loop on this thread
    calls = []
    real_sleep = time.sleep

    def watched_sleep(seconds):
        if threading.get_ident() == loop_thread:
            calls.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", watched_sleep)
    return calls
'''

REPORTER = '''\
import json
import os

results = {}
stores = {}


def pytest_collection_modifyitems(items):
    """Note which store (the create_app parameter) each test instance ran against, if any."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        stores[item.nodeid] = params.get("create_app")


def pytest_runtest_logreport(report):
    entry = results.setdefault(report.nodeid, {"outcome": "passed", "message": "",
                                               "store": stores.get(report.nodeid)})
    if report.failed and entry["outcome"] == "passed":
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        entry.update(outcome="failed" if report.when == "call" else "error",
                     message=message.strip().splitlines()[0] if message.strip() else "")
    if report.skipped:
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["STORE_REPORT"], "w") as out:
        json.dump({"exitstatus": int(exitstatus), "tests": results}, out)
'''


OVERDRAWN = ("took the stock before checking it, or without a check that stops it. Let the "
             "write check, in the order's transaction: `update(stock).where(stock.c.track_id == "
             "t, stock.c.quantity >= q).values(quantity=stock.c.quantity - q)`, and when its "
             "`rowcount` is not 1, roll back and answer 409.")


def _stock_overdrawn(exc: BaseException) -> bool:
    """Whether the learner's error is the stock_not_negative CHECK refusing a write."""
    from sqlalchemy.exc import IntegrityError

    cause = exc.__cause__
    return isinstance(cause, IntegrityError) and "stock_not_negative" in str(cause)


async def _run_pytest(folder: Path, stores: list[str], template: Path) -> dict:
    """Run pytest on the folder's test_store.py, once per store, in one subprocess."""
    report = folder / "report.json"
    env = {**os.environ, "STORE_VARIANTS": ",".join(stores), "STORE_TEMPLATE": str(template),
           "STORE_REPORT": str(report), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only anyio's plugin: nbval's is slow to load
           "PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH"))
                                         if p)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "anyio.pytest_plugin",
        "-p", "store_report",
        "-c", os.devnull, "--rootdir", str(folder), "test_store.py", cwd=folder, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if not report.exists():
        lines = [ln for ln in output.decode(errors="replace").splitlines() if ln.strip()]
        error = next((ln for ln in lines if "Error" in ln), lines[-1] if lines else "no output")
        raise Wrong(f"pytest could not run your tests: {error[:200]}")
    return json.loads(report.read_text())


def _test_key(nodeid: str, store: str | None) -> str:
    """A test instance's name without its store: `TestX::test_y[1-reference]` -> `TestX::test_y[1]`.

    Each instance of a parametrized test (and each method of a class) keeps its own key."""
    name = nodeid.split("::", 1)[-1]
    base, bracket, rest = name.partition("[")
    if not bracket or store is None:
        return name
    params = rest[:-1].split("-") if rest.endswith("]") else rest.split("-")
    if store in params:
        params.remove(store)
    return f"{base}[{'-'.join(params)}]" if params else base


def _by_store(tests: dict, stores: list[str]) -> dict[str, dict[str, dict]]:
    """{store: {test instance: result}}; a test that does not use `client` counts for every store."""
    out: dict[str, dict[str, dict]] = {store: {} for store in stores}
    for nodeid, result in tests.items():
        store = result.get("store")
        key = _test_key(nodeid, store)
        for each in [store] if store in out else stores:
            out[each][key] = result
    return out


async def _check_store_tests(store_tests) -> str:
    source = await call(store_tests)
    if not isinstance(source, str):
        raise Wrong(f"store_tests() returned {type(source).__name__}; return the text of your "
                    "test module, a str.")
    try:
        compile(source, "test_store.py", "exec")
    except SyntaxError as exc:
        raise Wrong(f"your test module does not compile: line {exc.lineno}: {exc.msg}.") from None
    import ast

    async_tests = [node.name for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test")]
    if async_tests and "anyio" not in source:
        raise Wrong(f"{async_tests[0]} is an async test without `@pytest.mark.anyio`, so pytest "
                    "cannot run it: add the mark (or `pytestmark = pytest.mark.anyio` at the top "
                    "of the module).")
    if "def test" not in source:
        raise Wrong("your module has no test: pytest collects functions whose names start "
                    "with `test`.")
    template = Path((await fresh_engine_url("check-11-q3")).database)  # set-up, before any test
    folder = Path(tempfile.mkdtemp(prefix="course-l11-q3-"))
    try:
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "store_report.py").write_text(REPORTER)
        (folder / "test_store.py").write_text(source)
        stores = ["reference", *VARIANTS]
        results = _by_store((await _run_pytest(folder, stores, template))["tests"], stores)
        tests = results["reference"]
        if not tests:
            raise Wrong("pytest collected no test from your module: name them `test_...`, and "
                        "mark async ones `@pytest.mark.anyio`.")
        for name, result in sorted(tests.items()):
            if result["outcome"] == "skipped":
                raise Wrong(f"{name} was skipped against the correct app: an async test without "
                            "`@pytest.mark.anyio` is not run (add the mark, or "
                            "`pytestmark = pytest.mark.anyio` at the top of the module).")
            if "not natively supported" in result["message"]:
                raise Wrong(f"{name} is an async test without `@pytest.mark.anyio`, so pytest "
                            "cannot run it: add the mark (or `pytestmark = pytest.mark.anyio` "
                            "at the top of the module).")
            if result["outcome"] != "passed":
                raise Wrong(f"{name} fails against the correct app (the lesson-09 store), so it "
                            f"cannot tell a bug from no bug: {result['message'][:160]}")
        routes = variant_routes()
        missed = []
        for variant in VARIANTS:
            if not any(r["outcome"] in ("failed", "error") for r in results[variant].values()):
                missed.append(routes[variant][3])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    caught = len(VARIANTS) - len(missed)
    if missed:
        raise Wrong(f"your tests caught {caught} of {len(VARIANTS)} planted bugs: they miss "
                    + "; ".join(missed) + ".")
    return (f"your {len(tests)} tests pass against the lesson-09 store and caught {caught} of "
            f"{len(VARIANTS)} planted bugs (a missing rollback, an off-by-one page, a 200 for a "
            "404, N+1 queries, a blocking call).")


q3 = Exercise(
    "q3", "store_tests", _check_store_tests,
    hints=["Start from one test per route, each with a precise expectation: the status code "
           "and the JSON. A test that only checks `status_code == 200` catches few bugs.",
           "Think like the bugs: a repeated artist name (409, then the store still works); two "
           "consecutive pages (the second starts where the first ended); a missing artist "
           "(404); the number of statements of a page (`statements`); `blocking_calls` after a "
           "request.",
           "For N+1: `statements.clear()`, one page of 50 tracks, then `assert len(statements) "
           "<= 3`. For blocking: request an album, then `assert blocking_calls == []`."],
    limit=240.0,
    title="Tests that catch bugs: scored by mutation",
)


# --- q4: the capstone ----------------------------------------------------------------------------

async def prepare_capstone(name: str, backend: Backend = "sqlite") -> Any:
    """A fresh Chinook with the store's tables (course.apps.store_orders) and its stock."""
    from course.apps.store_orders import prepare_store

    url = await fresh_engine_url(name, backend)
    async with not_counted():  # set-up: never the learner's time
        await prepare_store(url)
    return url


class _Receipts:
    """Stands in for the workbook's send_receipt: records the thread of every call and, off the
    loop, whether the order was already committed (seen from a connection of the check's)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.loop: asyncio.AbstractEventLoop | None = None
        self.committed: Any = None  # async (order_id) -> bool, set per database
        self.calls: list[int] = []
        self.on_loop = 0
        self.early: list[int] = []

    def __call__(self, order_id: int) -> None:
        self.calls.append(order_id)
        if threading.get_ident() == self.loop_thread:
            self.on_loop += 1
            return
        if self.committed is None or self.loop is None:
            return
        try:
            seen = asyncio.run_coroutine_threadsafe(self.committed(order_id),
                                                    self.loop).result(timeout=60)
        except Exception:
            return
        if not seen:
            self.early.append(order_id)


class _SleepWatch:
    """time.sleep, watched: counts calls made on the event loop's own thread."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.on_loop = 0
        self.real = time.sleep

    def __call__(self, seconds: float) -> None:
        if threading.get_ident() == self.loop_thread:
            self.on_loop += 1
        self.real(seconds)


class _Connections:
    """Connections of the learner's engines checked out now, counted by pool events, so that it
    works with every pool class (NullPool and StaticPool count nothing themselves)."""

    def __init__(self) -> None:
        self.out: set[int] = set()
        self.engines: list[Any] = []

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        self.out.add(id(record))

    def _checkin(self, dbapi_connection, record) -> None:
        self.out.discard(id(record))

    def watch(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engines.append(engine.sync_engine)
        event.listen(engine.sync_engine, "checkout", self._checkout)
        event.listen(engine.sync_engine, "checkin", self._checkin)

    def count(self) -> int:
        return len(self.out)

    def close(self) -> None:
        from sqlalchemy import event

        for engine in self.engines:
            event.remove(engine, "checkout", self._checkout)
            event.remove(engine, "checkin", self._checkin)


class _FloatMoney:
    """Records every float the learner's code binds for a money column (total, unit_price)."""

    COLUMNS = ("total", "unit_price")

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def before_execute(self, conn, clause, multiparams, params, options) -> None:
        table = getattr(getattr(clause, "table", None), "name", None)
        if table not in ("store_order", "store_order_line") or not getattr(clause, "is_dml", False):
            return
        sets = [clause.compile(dialect=conn.dialect).params, *(multiparams or []), params or {}]
        for values in sets:
            for column in self.COLUMNS:
                value = values.get(column) if isinstance(values, dict) else None
                if isinstance(value, float):
                    self.seen.append((f"{table}.{column}", value))


async def _store_state(engine: Any) -> tuple[dict[int, int], int, int]:
    from sqlalchemy import func, select

    from course.apps.store_orders import stock, store_order, store_order_line

    async with engine.connect() as conn:
        quantities = dict((await conn.execute(select(stock.c.track_id, stock.c.quantity))).all())
        orders = await conn.scalar(select(func.count()).select_from(store_order))
        lines = await conn.scalar(select(func.count()).select_from(store_order_line))
    return quantities, orders, lines


def _money(value: Any) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def _exact(value: Any) -> Decimal | None:
    """A JSON amount (a string or a number) as an exact Decimal; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _line_tracks(order: Any) -> Any:
    if isinstance(order, dict) and isinstance(order.get("lines"), list):
        return [line.get("track_id") if isinstance(line, dict) else line
                for line in order["lines"]]
    return None


def _lines_of(order: Any) -> Any:
    """An order's lines as (track_id, quantity) pairs, or None when it has no list of lines."""
    if isinstance(order, dict) and isinstance(order.get("lines"), list):
        return [(line.get("track_id"), line.get("quantity")) if isinstance(line, dict) else line
                for line in order["lines"]]
    return None


class _StockRace:
    """Makes a race between orders certain instead of likely: each request waits, up to 3 s, at
    its first write until every request has reached its own write, finished, or (on PostgreSQL)
    waits for a lock another one holds. So every read a request made before writing was made
    before any of them wrote.

    On SQLite the gate is the first write of any kind (the single writer serialises the rest);
    on PostgreSQL it is the first write to `stock` (an UPDATE, or a SELECT ... FOR UPDATE), so
    an answer that reads the stock after inserting its order is caught too."""

    def __init__(self, engines: list, requests: int, observer: Any = None) -> None:
        self.engines = [e.sync_engine for e in engines]
        self.requests = requests
        self.observer = observer  # the check's own engine on PostgreSQL, None on SQLite
        self.arrived: set[int] = set()
        self.finished = 0
        self.all_arrived = asyncio.Event()
        self.poller: asyncio.Task | None = None

    def _is_gate(self, statement: str) -> bool:
        head = " ".join(statement.replace('"', "").split()).upper()
        if self.observer is None:
            return head.startswith(("INSERT", "UPDATE", "DELETE"))
        return head.startswith("UPDATE STOCK ") or (head.startswith("SELECT")
                                                     and "FOR UPDATE" in head
                                                     and " STOCK" in head)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        from sqlalchemy.util import await_

        if not self._is_gate(statement) or id(conn) in self.arrived:
            return
        self.arrived.add(id(conn))
        if len(self.arrived) + self.finished >= self.requests:
            self.all_arrived.set()
        else:
            await_(self._everyone_arrived())

    async def _everyone_arrived(self) -> None:
        try:
            async with asyncio.timeout(3):
                await self.all_arrived.wait()
        except TimeoutError:
            pass  # another request is held elsewhere (by a lock of the app's own): go on

    async def _poll_lock_waits(self) -> None:
        """PostgreSQL: requests blocked on a row or key lock count as arrived."""
        from sqlalchemy import text

        waits = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event_type = 'Lock'")
        async with self.observer.connect() as conn:
            while not self.all_arrived.is_set():
                waiting = await conn.scalar(waits)
                if len(self.arrived) + self.finished + waiting >= self.requests:
                    self.all_arrived.set()
                await asyncio.sleep(0.01)

    async def run(self, attempt: Any) -> Any:
        """Await one request of the race, and count it finished when it ends."""
        try:
            return await attempt
        finally:
            self.finished += 1
            if len(self.arrived) + self.finished >= self.requests:
                self.all_arrived.set()

    def __enter__(self) -> _StockRace:
        from sqlalchemy import event

        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._before)
        if self.observer is not None:
            self.poller = asyncio.ensure_future(self._poll_lock_waits())
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._before)
        if self.poller is not None:
            self.poller.cancel()


def _short(response: Any) -> str:
    text = response.text
    return text if len(text) <= 100 else text[:97] + "..."


class _Instance:
    """One running copy of the learner's app: its client and the engine its lifespan made."""

    def __init__(self, client: Any, engine: Any) -> None:
        self.client, self.engine = client, engine
        self.app: Any = None
        self.mine: list = []  # the engines its /_check/state route saw


async def _prices(engine: Any) -> dict[int, Decimal]:
    from sqlalchemy import select

    from course.models import Track

    async with engine.connect() as conn:
        return {i: Decimal(str(p)) for i, p in (await conn.execute(
            select(Track.track_id, Track.unit_price))).all()}


def _expected_order(order_id: Any, customer: int, lines: list[tuple[int, int]],
                    prices: dict[int, Decimal]) -> dict:
    total = sum((prices[t] * q for t, q in lines), Decimal(0))
    return {"order_id": order_id, "customer_id": customer, "total": _money(total),
            "lines": [{"track_id": t, "quantity": q, "unit_price": _money(prices[t])}
                      for t, q in lines]}


def _normal(order: Any) -> Any:
    """An order's JSON with its money written as 2-decimal strings, to compare."""
    if not isinstance(order, dict):
        return order
    out = dict(order)
    if "total" in out:
        out["total"] = _money(out["total"]) if out["total"] is not None else None
    if isinstance(out.get("lines"), list):
        out["lines"] = [{**line, "unit_price": _money(line["unit_price"])}
                        if isinstance(line, dict) and line.get("unit_price") is not None else line
                        for line in out["lines"]]
    return out


def _same_line_order(route: str, order: Any, lines: list[tuple[int, int]]) -> None:
    got = _line_tracks(order)
    sent = [t for t, _ in lines]
    if isinstance(got, list) and sorted(got, key=str) == sorted(sent) and got != sent:
        raise Wrong(f"an order sent with its lines for tracks {sent} (in that order) came back "
                    f"from {route} with them in the order {got}: give the lines back in the "
                    "order given. Store each line's position (`line_no`) and "
                    "`ORDER BY order_id, line_no` when you read them.")


def _lines_as_sent(route: str, order: Any, lines: list[tuple[int, int]]) -> None:
    """The lines read back must be the lines sent: one each, in the order given."""
    _same_line_order(route, order, lines)
    got = _lines_of(order)
    if got is None or got == list(lines):
        return
    if len(got) < len(lines):
        seen = f"{len(got)} line(s) instead of {len(lines)}"
    elif len(got) > len(lines):
        seen = f"{len(got)} lines instead of {len(lines)}"
    else:
        seen = "other lines"
    raise Wrong(f"an order sent with the lines {lines} (track, quantity) came back from {route} "
                f"with {seen}: {got}. Give back each line as it was sent: one store_order_line "
                "per line (`line_no` 1, 2, ...), even when a track is on two lines, never "
                "merged or keyed by track, read with `ORDER BY order_id, line_no`.")


def _exact_total(route: str, order: Any, lines: list[tuple[int, int]],
                 prices: dict[int, Decimal]) -> None:
    if not isinstance(order, dict) or "total" not in order:
        return
    total = sum((prices[t] * q for t, q in lines), Decimal(0))
    got = _exact(order["total"])
    if got is not None and got != total:
        shown = " + ".join(f"{q} x {prices[t]}" for t, q in lines)
        raise Wrong(f"{route} with {shown} answered total {order['total']!r}; the exact sum is "
                    f"{total}. Floats cannot hold most cents exactly: add Decimal prices "
                    "(`unit_price * quantity` with the Decimal the Numeric column gives), "
                    "never float().")


class _Suite:
    """The hidden suite, on one database: two instances of the app, a connection of the
    check's own (`observer`) to look at the database, and the probes around them."""

    def __init__(self, instances: list[_Instance], observer: Any, receipts: _Receipts,
                 connections: _Connections, floats: _FloatMoney, backend: Backend) -> None:
        self.instances, self.observer, self.receipts = instances, observer, receipts
        self.connections, self.floats, self.backend = connections, floats, backend
        self.engines = [i.engine for i in instances]
        self.keys = 0
        self.sent: dict[Any, list[tuple[int, int]]] = {}  # order_id -> the lines sent
        self.done: list[str] = []

    def key(self) -> str:
        self.keys += 1
        return f"check-{self.keys}-O'Hara; DROP TABLE stock"

    async def send(self, method: str, path: str, instance: int = 0, **kwargs: Any) -> Any:
        return await call(self.instances[instance].client.request, method, path, **kwargs)

    async def order(self, lines: list[tuple[int, int]], key: str | None = None,
                    customer: int = 7, instance: int = 0) -> Any:
        response = await self.send("POST", "/orders", instance=instance,
                                   headers={"Idempotency-Key": key or self.key()},
                                   json={"customer_id": customer,
                                         "lines": [{"track_id": t, "quantity": q}
                                                   for t, q in lines]})
        if response.status_code == 201:
            body = response.json()
            if isinstance(body, dict):
                self.sent[body.get("order_id")] = list(lines)
        return response

    async def state(self) -> tuple[dict[int, int], int, int]:
        return await _store_state(self.observer)

    def race(self, requests: int) -> _StockRace:
        return _StockRace(self.engines, requests,
                          self.observer if self.backend == "postgresql" else None)

    def no_float_money(self) -> None:
        if self.floats.seen:
            where, value = self.floats.seen[0]
            raise Wrong(f"your code wrote {where} as the float {value!r}: floats cannot hold "
                        "most cents exactly, even rounded, and a sum of them drifts. Keep money "
                        "in Decimal from the Numeric column to the database (`unit_price * "
                        "quantity`, `sum(..., Decimal(0))`), never float() or round().")

    async def run(self) -> list[str]:
        """Run every hidden test in turn; return what each one checked."""
        try:
            return await self._run()
        except LearnerError as exc:
            if _stock_overdrawn(exc):
                raise Wrong("an order failed with IntegrityError from the stock_not_negative "
                            f"CHECK constraint (a 500), {self.where()}: your route wrote a stock "
                            f"below 0, so it {OVERDRAWN}") from None
            raise

    async def _run(self) -> list[str]:
        """The hidden tests, in order."""
        self.prices = await _prices(self.observer)
        self.stock0, self.orders0, _ = await self.state()
        self.in_stock = sorted(t for t, q in self.stock0.items() if q >= 3)
        self.sold_out = sorted(t for t, q in self.stock0.items() if q == 0)
        self.rng = random.Random(11)
        await self.first_order()
        await self.retried_key()
        await self.identical_burst()
        await self.refused_lines()
        await self.last_copies()
        await self.retries_for_the_last_copy()
        await self.track_on_two_lines()
        await self.exact_money()
        await self.cancelled_request()
        await self.pages_of_orders()
        await self.search()
        return self.done

    async def first_order(self) -> None:
        """An order: its stock taken, its receipt sent off the loop, after the commit."""
        stock0, prices = self.stock0, self.prices
        a, b, c = self.rng.sample(self.in_stock, 3)
        # the lines are sent in descending track order; enough stock is left to take them again
        a, b = sorted(self.rng.sample([t for t in self.in_stock if stock0[t] >= 4 and t != c], 2),
                      reverse=True)
        self.a, self.b, self.c = a, b, c
        self.lines = lines = [(a, 2), (b, 1)]
        response = await self.order(lines, key="first-order")
        if response.status_code != 201:
            raise Wrong(f"POST /orders with 2 lines in stock answered {response.status_code} "
                        f"{_short(response)}; expected 201.")
        raw = response.json()
        _same_line_order("POST /orders", raw, lines)
        _exact_total("POST /orders", raw, lines, prices)
        body = _normal(raw)
        self.order_id = order_id = body.get("order_id") if isinstance(body, dict) else None
        self.want = want = _expected_order(order_id, 7, lines, prices)
        if body != want:
            raise Wrong(f"POST /orders returned {str(body)[:150]}; expected {str(want)[:150]} "
                        "(prices from the track table, lines in the order given, total = sum of "
                        "quantity x unit_price).")
        self.after, orders, _ = await self.state()
        after = self.after
        if (after[a], after[b]) != (stock0[a] - 2, stock0[b] - 1):
            raise Wrong(f"after an order of 2 x track {a} and 1 x track {b}, their stock went "
                        f"from {stock0[a]}, {stock0[b]} to {after[a]}, {after[b]}: take the "
                        "ordered quantities off `stock` in the same transaction as the order.")
        if orders != self.orders0 + 1:
            raise Wrong(f"one POST /orders stored {orders - self.orders0} orders.")
        if self.receipts.on_loop:
            raise Wrong("send_receipt ran on the event loop's own thread: while it waits, every "
                        "other request waits too. `await asyncio.to_thread(send_receipt, "
                        "order_id)`.")
        if self.receipts.calls != [order_id]:
            raise Wrong(f"after one order, send_receipt was called with {self.receipts.calls}; "
                        f"expected [{order_id}], once, after the commit.")
        if self.receipts.early:
            raise Wrong(f"when send_receipt({order_id}) was called, a connection of the check's "
                        f"did not see order {order_id} in store_order yet: it was not committed. "
                        "A receipt must never announce an order that can still be rolled back: "
                        "`await session.commit()` first, then send the receipt.")
        self.no_float_money()
        self.done.append("an order stored with its lines and prices, stock taken, receipt "
                         "sent after the commit")

    async def retried_key(self) -> None:
        """The same key again: the same order, nothing taken twice, no second receipt."""
        from sqlalchemy.exc import IntegrityError

        order_id, want = self.order_id, self.want
        try:
            replay = await self.order(self.lines, key="first-order", instance=1)
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong("POST /orders again with the same Idempotency-Key failed with "
                            "IntegrityError (a 500): the unique key refused the second order, "
                            "as it should, but nothing answered. Catch the IntegrityError of "
                            "the unique key, roll back, and answer 200 with the stored "
                            "order.") from None
            raise
        if replay.status_code not in (200, 201) or _normal(replay.json()) != want:
            raise Wrong(f"POST /orders again with the same Idempotency-Key answered "
                        f"{replay.status_code} {_short(replay)}; expected the first order again "
                        f"(order_id {order_id}), with 200.")
        if replay.status_code != 200:
            raise Wrong("a repeated Idempotency-Key returned the first order with 201 Created; "
                        "nothing was created, so answer 200 (set `response.status_code = 200`).")
        again, orders, _ = await self.state()
        if again != self.after or orders != self.orders0 + 1:
            raise Wrong("a repeated Idempotency-Key stored a second order or took stock again: "
                        "claim the key with the order's INSERT, and let the unique constraint "
                        "on idempotency_key refuse the second one.")
        if self.receipts.calls != [order_id]:
            raise Wrong("a repeated Idempotency-Key sent a second receipt.")
        found = await self.send("GET", f"/orders/{order_id}")
        if found.status_code == 200:
            _same_line_order(f"GET /orders/{order_id}", found.json(), self.lines)
        if found.status_code != 200 or _normal(found.json()) != want:
            raise Wrong(f"GET /orders/{order_id} answered {found.status_code} {_short(found)}; "
                        "expected the order as POST returned it.")
        missing = await self.send("GET", "/orders/999999")
        if missing.status_code != 404:
            raise Wrong(f"GET /orders/999999 answered {missing.status_code}; expected 404.")
        self.done.append("a retried key answered 200 with the same order")

    async def identical_burst(self) -> None:
        """Five identical requests at once, on two instances: one order."""
        from sqlalchemy.exc import IntegrityError

        race = ("Two requests can both miss the key when they look it up: catch the "
                "IntegrityError of the unique key, roll back, and return the order that won.")
        try:
            responses = await asyncio.gather(*(self.order([(self.c, 1)], key="burst",
                                                          instance=i % 2) for i in range(5)))
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong("5 identical requests with one Idempotency-Key at once: one of them "
                            f"failed with IntegrityError (a 500). {race}") from None
            raise
        codes = sorted(r.status_code for r in responses)
        ids = {r.json().get("order_id") for r in responses if r.status_code in (200, 201)}
        _, orders, _ = await self.state()
        if codes != [200, 200, 200, 200, 201] or len(ids) != 1 or orders != self.orders0 + 2:
            raise Wrong(f"5 identical requests with one Idempotency-Key at once answered "
                        f"{codes} and stored {orders - self.orders0 - 1} order(s); expected one "
                        f"201, four 200 with the same order, one order. {race}")
        self.done.append("5 concurrent retries made one order")

    async def refused_lines(self) -> None:
        """A failure midway: the third line is sold out / short / unknown; nothing may remain."""
        before, orders_before, lines_before = await self.state()
        receipts_before = len(self.receipts.calls)
        sold_out = self.sold_out
        d, e = self.rng.sample([t for t in self.in_stock if t not in (self.a, self.b, self.c)], 2)
        self.d, self.e = d, e
        for bad, expected, why in (
                ((sold_out[0], 1), 409, f"track {sold_out[0]} is sold out"),
                ((e, before[e] + 1), 409, f"track {e} has only {before[e]} in stock"),
                ((999_999, 1), 404, "track 999999 does not exist")):
            try:
                response = await self.order([(d, 1), (e, 1), bad])
            except LearnerError as exc:
                if expected == 409 and _stock_overdrawn(exc):
                    raise Wrong(f"an order whose third line is impossible ({why}) failed with "
                                "IntegrityError from the stock_not_negative CHECK constraint "
                                f"(a 500): your route wrote a stock below 0, so it {OVERDRAWN}"
                                ) from None
                raise
            state = await self.state()
            if response.status_code != expected:
                raise Wrong(f"an order whose third line is impossible ({why}) answered "
                            f"{response.status_code} {_short(response)}; expected {expected}.")
            if state != (before, orders_before, lines_before):
                raise Wrong(f"an order whose third line is impossible ({why}) answered "
                            f"{response.status_code}, but left changes behind (stock taken by "
                            "the first lines, or an order row): check and write in one "
                            "transaction, and roll it back on the way out.")
        if len(self.receipts.calls) != receipts_before:
            raise Wrong("a refused order sent a receipt.")
        self.done.append("a refused line left nothing behind (409/404)")

    def where(self) -> str:
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        return f"on {names[self.backend]}, through two instances of your app on one database"

    async def last_copies(self) -> None:
        """The last copies of a track, five orders (five keys) at once, on two instances."""
        from sqlalchemy.exc import IntegrityError

        self.used = {self.a, self.b, self.c, self.d, self.e, *self.in_stock[-12:],
                     *self.in_stock[-31:-19]}
        state, _, _ = await self.state()
        last = next(t for t in sorted(state) if state[t] == 2 and t not in self.used)
        self.used.add(last)
        with self.race(5) as race:
            outcomes = await asyncio.gather(*(race.run(self.order([(last, 1)], instance=i % 2))
                                              for i in range(5)), return_exceptions=True)
        told = (f"five orders at once (five Idempotency-Keys) for 1 copy each of track {last}, "
                f"which had 2 in stock, {self.where()}")
        for outcome in outcomes:
            if isinstance(outcome, LearnerError) and isinstance(outcome.__cause__, IntegrityError):
                raise Wrong(f"{told}: one failed with IntegrityError (the stock_not_negative "
                            "constraint, a 500). Every request read the stock before any of them "
                            "took it, so all saw 2: a check made apart from the write is stale by "
                            "the time you write. Let the write check: `update(stock).where("
                            "stock.c.track_id == t, stock.c.quantity >= q)`, `rowcount == 1` or "
                            "409, in the order's transaction.")
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        codes = sorted(r.status_code for r in outcomes)
        state, _, _ = await self.state()
        if codes != [201, 201, 409, 409, 409] or state[last] != 0:
            raise Wrong(f"{told}, were answered {codes} and left a stock of {state[last]}; "
                        "expected two 201, three 409 and a stock of 0. The check held each "
                        "request at its first write until all had read; likely causes: the stock "
                        "read in one statement and written in another (each request writes what "
                        "it read), or orders serialised by a lock inside one app (an "
                        "asyncio.Lock reaches neither a second instance nor a second process). "
                        "Let the database judge: `update(stock).where(stock.c.track_id == t, "
                        "stock.c.quantity >= q)` and `rowcount == 1`, else 409.")
        self.done.append("5 orders at once for the last 2 copies: two 201, three 409")

    async def retries_for_the_last_copy(self) -> None:
        """Five retries of one key at once, for the last copy of a track: one order, four 200."""
        state, orders_before, _ = await self.state()
        last = next(t for t in sorted(state) if state[t] == 1 and t not in self.used)
        self.used.add(last)
        receipts_before = len(self.receipts.calls)
        with self.race(5) as race:
            outcomes = await asyncio.gather(*(race.run(self.order([(last, 1)], key="last-copy",
                                                                  instance=i % 2))
                                              for i in range(5)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        codes = sorted(r.status_code for r in outcomes)
        ids = {r.json().get("order_id") for r in outcomes if r.status_code in (200, 201)}
        state, orders, _ = await self.state()
        told = (f"five retries of one Idempotency-Key at once, for the last copy of track {last}, "
                f"{self.where()}, were answered {codes}, stored {orders - orders_before} "
                f"order(s) and left a stock of {state[last]}")
        if codes != [200, 200, 200, 200, 201] or len(ids) != 1 or orders != orders_before + 1:
            hint = ""
            if 409 in codes:
                hint = (" A retry answered 409: it took the stock before it claimed the key, "
                        "so it lost the copy to its own first request.")
            raise Wrong(f"{told}; expected one 201 and four 200 with the same order.{hint} Claim "
                        "the key first: INSERT the order (its unique idempotency_key) before "
                        "taking stock, in the same transaction; a retry's INSERT then waits for "
                        "the first request and fails with IntegrityError: roll back and answer "
                        "200 with the stored order.")
        if state[last] != 0 or len(self.receipts.calls) != receipts_before + 1:
            raise Wrong(f"{told}, and sent {len(self.receipts.calls) - receipts_before} "
                        "receipt(s); expected a stock of 0 and one receipt.")
        self.done.append("5 retries racing for the last copy: one 201, four 200")

    async def track_on_two_lines(self) -> None:
        """The same track on two lines: together they must be in stock, and both come back."""
        from sqlalchemy.exc import IntegrityError

        state0, orders_before, lines_before = await self.state()
        twice = next(t for t in self.in_stock if state0[t] == 4 and t not in self.used)
        self.used.add(twice)
        try:
            response = await self.order([(twice, 3), (twice, 3)])
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong(f"an order with track {twice} on two lines, 3 + 3 copies, with 4 in "
                            "stock, failed with IntegrityError (a 500): each line was checked "
                            "against the stock as it was before the order, and the second one "
                            "overdrew it. Check each line against the stock left by the lines "
                            "before it: `update(stock).where(stock.c.track_id == t, "
                            "stock.c.quantity >= q)` and `rowcount == 1`, line by line.") from None
            raise
        if response.status_code != 409 or await self.state() != (state0, orders_before,
                                                                 lines_before):
            raise Wrong(f"an order with track {twice} on two lines, 3 + 3 copies, with 4 in "
                        f"stock, answered {response.status_code} {_short(response)}; expected "
                        "409 and nothing changed: the lines of one order take the same stock "
                        "together.")
        lines = [(twice, 2), (twice, 2)]
        response = await self.order(lines)
        state, _, _ = await self.state()
        if response.status_code != 201 or state[twice] != 0:
            raise Wrong(f"an order with track {twice} on two lines, 2 + 2 copies, with 4 in "
                        f"stock, answered {response.status_code} {_short(response)} and left a "
                        f"stock of {state[twice]}; expected 201 and a stock of 0.")
        _lines_as_sent("POST /orders", response.json(), lines)
        order_id = response.json().get("order_id")
        found = await self.send("GET", f"/orders/{order_id}", instance=1)
        if found.status_code != 200:
            raise Wrong(f"GET /orders/{order_id} answered {found.status_code} {_short(found)}; "
                        "expected 200.")
        _lines_as_sent(f"GET /orders/{order_id}", found.json(), lines)
        self.done.append("the same track on two lines counted together and read back as sent")

    async def exact_money(self) -> None:
        """3 x 0.99 + 3 x 1.99 is 8.94, which floats cannot add up to."""
        state, _, _ = await self.state()
        prices = self.prices
        video = next(t for t in self.in_stock if prices[t] == Decimal("1.99") and state[t] >= 3
                     and t not in self.used)
        audio = next(t for t in self.in_stock if prices[t] == Decimal("0.99") and state[t] >= 3
                     and t not in self.used and t < video)
        self.used |= {video, audio}
        money = [(video, 3), (audio, 3)]
        response = await self.order(money)
        if response.status_code != 201:
            raise Wrong(f"POST /orders with {money} answered {response.status_code} "
                        f"{_short(response)}; expected 201.")
        _exact_total("POST /orders", response.json(), money, prices)
        self.no_float_money()
        self.done.append("exact totals, in Decimal")

    async def cancelled_request(self) -> None:
        """A request cancelled at its first INSERT: nothing may remain, the connection returns."""
        from sqlalchemy import event

        before = await self.state()
        task: asyncio.Task | None = None
        seen_insert = False

        def cancel_on_insert(conn, cursor, statement, parameters, context, executemany) -> None:
            nonlocal seen_insert
            if (statement.lstrip().upper().startswith("INSERT") and task is not None
                    and not seen_insert):
                seen_insert = True
                task.cancel()

        for learner_engine in self.engines:
            event.listen(learner_engine.sync_engine, "before_cursor_execute", cancel_on_insert)
        try:
            task = asyncio.create_task(self.order([(self.d, 1), (self.e, 1)]))
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
            except (Wrong, LearnerError):
                pass
        finally:
            for learner_engine in self.engines:
                event.remove(learner_engine.sync_engine, "before_cursor_execute",
                             cancel_on_insert)
        if not seen_insert:
            return
        for _ in range(50):  # the cancelled request's clean-up may need a few loop turns
            if not self.connections.count():
                break
            await asyncio.sleep(0.02)
        if await self.state() != before:
            raise Wrong("a request cancelled at its first INSERT left changes behind: keep the "
                        "writes in one transaction that is only committed at the end.")
        left = self.connections.count()
        if left:
            raise Wrong(f"after a request was cancelled midway, {left} connection(s) stayed "
                        "checked out: use the session from the dependency (`async with "
                        "sessionmaker() as session: yield session`), which gives it back.")
        self.done.append("a cancelled request left nothing behind")

    async def shuffle_natural_order(self) -> None:
        """PostgreSQL: rewrite the first orders, so that a table scan returns them last and a
        page without ORDER BY differs from the wanted one (SQLite scans by order_id anyway)."""
        if self.backend != "postgresql":
            return
        from sqlalchemy import select, update

        from course.apps.store_orders import store_order

        async with self.observer.begin() as conn:
            first = (await conn.scalars(select(store_order.c.order_id)
                                        .order_by(store_order.c.order_id).limit(3))).all()
            await conn.execute(update(store_order).where(store_order.c.order_id.in_(first))
                               .values(customer_id=store_order.c.customer_id))

    async def pages_of_orders(self) -> None:
        """Pages of orders, with their lines as sent, in a fixed number of statements."""
        from course.probes import StatementCounter

        in_stock = self.in_stock
        for n in range(12):
            lines = [(in_stock[-1 - n], 1), (in_stock[-20 - n], 1)]
            response = await self.order(lines)
            if response.status_code != 201:
                raise Wrong(f"POST /orders answered {response.status_code} {_short(response)}; "
                            "expected 201.")
        await self.shuffle_natural_order()
        _, orders, _ = await self.state()
        everything: list[dict] = []
        counts = []
        offset = 0
        while True:
            with StatementCounter(self.engines[0]) as counter:
                response = await self.send("GET", "/orders", params={"limit": 5, "offset": offset})
            if response.status_code != 200:
                raise Wrong(f"GET /orders?limit=5&offset={offset} answered {response.status_code} "
                            f"{_short(response)}.")
            page = response.json()
            counts.append(counter.count)
            if not isinstance(page, list) or len(page) > 5:
                raise Wrong(f"GET /orders?limit=5&offset={offset} returned {str(page)[:100]}; "
                            "expected a list of at most 5 orders.")
            everything += page
            if len(page) < 5 or offset > 5 * orders:
                break
            offset += 5
        order_ids = [o.get("order_id") if isinstance(o, dict) else o for o in everything]
        try:
            in_order = order_ids == sorted(set(order_ids))
        except TypeError:
            in_order = False
        if not in_order or len(order_ids) != orders:
            raise Wrong(f"GET /orders page after page gave the ids {order_ids[:20]}; expected "
                        f"each of the {orders} orders once, ordered by order_id: "
                        "`.order_by(store_order.c.order_id).limit(limit).offset(offset)` (without "
                        "ORDER BY a database returns rows in whatever order it finds them).")
        if not all(isinstance(o.get("lines"), list) and o["lines"] for o in everything):
            raise Wrong("GET /orders returned orders without their lines.")
        for order in everything:
            sent = self.sent.get(order.get("order_id"))
            if sent is not None:
                _lines_as_sent("GET /orders", order, sent)
        if max(counts) > 3:
            raise Wrong(f"GET /orders?limit=5 ran up to {max(counts)} SQL statements for one "
                        "page: one query per order is N+1. Load the page's lines in one query "
                        "(`WHERE order_id IN (...)`, or selectinload).")
        for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
            response = await self.send("GET", "/orders", params=params)
            if response.status_code != 422:
                raise Wrong(f"GET /orders with {params} answered {response.status_code}; "
                            "expected 422 (limit between 1 and 100, offset from 0).")
        self.done.append(f"{len(order_ids)} orders paged, at most {max(counts)} statements a "
                         "page")

    async def search(self) -> None:
        """Search: hostile strings stay data, pages follow each other, no N+1."""
        from sqlalchemy import select

        from course.apps.store_orders import initial_stock, stock
        from course.models import Track
        from course.probes import StatementCounter

        async with self.observer.connect() as conn:
            rows = (await conn.execute(select(Track.track_id, Track.name, stock.c.quantity)
                                       .join(stock, stock.c.track_id == Track.track_id)
                                       .order_by(Track.track_id))).all()
        for q in ("love", "LOVE", *HOSTILE_INPUTS, "100%", "_"):
            expected_ids = [r.track_id for r in rows if q.lower() in r.name.lower()][:100]
            with StatementCounter(self.engines[0]) as counter:
                try:
                    response = await self.send("GET", "/tracks", params={"q": q, "limit": 100})
                except LearnerError as exc:
                    from sqlalchemy.exc import DBAPIError

                    if not isinstance(exc.__cause__, DBAPIError):
                        raise
                    raise Wrong(f"GET /tracks?q={q!r} failed in the database with "
                                f"{type(exc.__cause__).__name__} (a 500): the search text "
                                "became part of the SQL, so its quote or wildcard changed the "
                                "statement. Bind q as a parameter, never an f-string: "
                                "`Track.name.icontains(q, autoescape=True)`.") from None
            if response.status_code != 200:
                raise Wrong(f"GET /tracks?q={q!r} answered {response.status_code} "
                            f"{_short(response)}.")
            got = response.json()
            got_ids = [t.get("track_id") for t in got] if isinstance(got, list) else got
            if got_ids != expected_ids:
                raise Wrong(_search_wrong(q, got, expected_ids, self.backend))
            if counter.count > 2:
                raise Wrong(f"GET /tracks?q={q!r} ran {counter.count} statements: join stock in "
                            "the same query.")
        stocks = {r.track_id: r.quantity for r in rows}
        first = (await self.send("GET", "/tracks", params={"q": "a", "limit": 7})).json()
        second = (await self.send("GET", "/tracks",
                                  params={"q": "a", "limit": 7, "offset": 7})).json()
        want_ids = [r.track_id for r in rows if "a" in r.name.lower()][:14]
        if [t.get("track_id") for t in first + second] != want_ids:
            raise Wrong("GET /tracks?q=a&limit=7 and then &offset=7 did not give the first 14 "
                        "matches in track_id order.")
        for t in first + second:
            if t.get("stock") != stocks[t["track_id"]]:
                raise Wrong(f"GET /tracks: track {t['track_id']} shows stock {t.get('stock')}; "
                            f"the stock table says {stocks[t['track_id']]}.")
        if self.stock0.get(1) != initial_stock(1):
            raise Wrong("the stock table did not start as prepare_store left it.")
        self.done.append(f"{len(HOSTILE_INPUTS) + 4} searches, hostile strings kept as data")


def _search_wrong(q: str, got: Any, expected_ids: list, backend: Backend) -> str:
    """What GET /tracks?q= gave against what it should have, with the causes the data shows."""
    on = "SQLite" if backend == "sqlite" else "PostgreSQL"
    if not isinstance(got, list):
        return f"GET /tracks?q={q!r} returned {str(got)[:80]}; expected a list of tracks."
    seen = (f"GET /tracks?q={q!r} gave {len(got)} tracks on {on}; {len(expected_ids)} track "
            "names contain it (ignoring case, every character literal, ordered by track_id)")
    names = [t.get("name", "") for t in got if isinstance(t, dict)]
    if len(got) > len(expected_ids) and ("%" in q or "_" in q):
        return (f"{seen}: % and _ are LIKE wildcards, and the extra names do not hold {q!r} "
                "itself: q likely reached LIKE unescaped. `Track.name.icontains(q, "
                "autoescape=True)` escapes them.")
    if len(got) < len(expected_ids) and all(q in name for name in names):
        return (f"{seen}, and every name returned holds {q!r} in exactly that case: a "
                "case-sensitive search (`contains`, or LIKE on PostgreSQL; SQLite's LIKE ignores "
                "the case of ASCII letters, PostgreSQL's does not). `Track.name.icontains(q, "
                "autoescape=True)`.")
    if len(got) > len(expected_ids) and "'" in q:
        return (f"{seen}: the quote in q likely changed the statement, so the text became SQL. "
                "Bind it as data: `Track.name.icontains(q, autoescape=True)`.")
    return (f"{seen}: the ids were {[t.get('track_id') for t in got if isinstance(t, dict)][:8]}"
            f", expected {expected_ids[:8]}. `Track.name.icontains(q, autoescape=True)`, ordered "
            "by track_id.")


async def _start(stack: Any, create_store_app: Any, url: str, engines: list,
                 connections: _Connections, floats: _FloatMoney) -> _Instance:
    """Make one instance of the learner's app, run its lifespan, and find the engine it made."""
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    app = await call(create_store_app, url)
    if not isinstance(app, FastAPI):
        raise Wrong(f"create_store_app(url) should return the FastAPI app; it returned "
                    f"{type(app).__name__}.")
    if app.router.on_startup:
        raise Wrong("the app uses @app.on_event, which is deprecated: give it "
                    "`FastAPI(lifespan=lifespan)`.")
    mine: list[AsyncEngine] = []

    async def _state(request: Request) -> dict:
        engine = getattr(request.state, "engine", None)
        if isinstance(engine, AsyncEngine):
            mine.append(engine)
        return {}

    app.add_api_route("/_check/state", _state, methods=["GET"])
    return await _serve(stack, app, mine, engines, connections, floats)


async def _serve(stack: Any, app: Any, mine: list, engines: list, connections: _Connections,
                 floats: _FloatMoney, restart: bool = False) -> _Instance:
    """Run the app's lifespan, open a client on it, and watch the engine the lifespan made."""
    import httpx
    from asgi_lifespan import LifespanManager
    from sqlalchemy import event

    manager = await stack.enter_async_context(LifespanManager(app))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=BASE))
    mine.clear()
    await call(client.get, "/_check/state")
    if not mine:
        raise Wrong("after start-up, request.state has no `engine`: the lifespan should create "
                    "it and yield {'engine': engine, 'sessionmaker': async_sessionmaker(engine, "
                    "expire_on_commit=False)}.")
    engine = mine[0]
    if engine in engines and restart:
        raise Wrong("the app's second start-up gave request.state the same engine as its first, "
                    "which the first shutdown had disposed of. Let each start-up of the "
                    "lifespan create its own engine (inside the lifespan, before `yield`) and "
                    "keep none from an earlier one.")
    if engine in engines:
        raise Wrong("two instances of your app, each started by its own lifespan, were given "
                    "the same engine in request.state: the first one's shutdown would dispose "
                    "of it under the second. Let each start-up of the lifespan create its own "
                    "engine (inside the lifespan, before `yield`) and keep none from an earlier "
                    "one.")
    engines.append(engine)
    connections.watch(engine)
    event.listen(engine.sync_engine, "before_execute", floats.before_execute)
    instance = _Instance(client, engine)
    instance.app, instance.mine = app, mine
    return instance


def _idle(engine: Any) -> int:
    """Connections the engine's pool still holds; 0 for pools that hold none (NullPool)."""
    checkedin = getattr(engine.pool, "checkedin", None)
    return checkedin() if callable(checkedin) else 0


async def _committed(observer: Any, order_id: Any) -> bool:
    """Does a connection of the check's own see the order in store_order?"""
    from sqlalchemy import func, select

    from course.apps.store_orders import store_order

    async with observer.connect() as conn:
        return bool(await conn.scalar(select(func.count())
                                      .where(store_order.c.order_id == order_id)))


async def _suite_on(backend: Backend, create_store_app: Any, receipts: _Receipts,
                    sleep: _SleepWatch) -> list[str]:
    """The hidden suite on a fresh database of `backend`, with two instances of the app."""
    from contextlib import AsyncExitStack

    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = await prepare_capstone("check-11-q4" if backend == "sqlite" else "check_11_q4",
                                 backend)
    observer = create_async_engine(url, poolclass=NullPool)
    receipts.calls.clear()
    receipts.early.clear()
    receipts.committed = lambda order_id: _committed(observer, order_id)
    connections, floats = _Connections(), _FloatMoney()
    engines: list[Any] = []
    raw_url = url.render_as_string(hide_password=False)
    try:
        async with AsyncExitStack() as stack:
            instances = [await _start(stack, create_store_app, raw_url, engines, connections,
                                      floats) for _ in range(2)]
            suite = _Suite(instances, observer, receipts, connections, floats, backend)
            time.sleep = sleep  # type: ignore[assignment]
            try:
                done = await suite.run()
            finally:
                time.sleep = sleep.real  # type: ignore[assignment]
            if sleep.on_loop:
                raise Wrong(f"time.sleep ran {sleep.on_loop} time(s) on the event loop's "
                            "thread during the requests: it stops every request. Await "
                            "`asyncio.sleep`, or run blocking code with asyncio.to_thread.")
            left = connections.count()
            if left:
                raise Wrong(f"after the suite, {left} connection(s) were still checked out: "
                            "every request must give its session back.")
        idle = sum(_idle(engine) for engine in engines)
        if idle:
            raise Wrong(f"after shutdown the app's engine still held {idle} connection(s): "
                        "`await engine.dispose()` after the lifespan's yield.")
        async with AsyncExitStack() as stack:  # a second start-up of the same app
            await _serve(stack, instances[0].app, instances[0].mine, engines, connections,
                         floats, restart=True)
    finally:
        connections.close()
        for engine in engines:
            if event.contains(engine.sync_engine, "before_execute", floats.before_execute):
                event.remove(engine.sync_engine, "before_execute", floats.before_execute)
            await engine.dispose()
        await observer.dispose()
        receipts.committed = None
    return done


async def _check_create_store_app(create_store_app) -> str:
    namespace = getattr(create_store_app, "__globals__", None)
    if namespace is None:
        raise Wrong("pass your function `create_store_app` itself.")
    loop_thread = threading.get_ident()
    receipts = _Receipts(loop_thread)
    receipts.loop = asyncio.get_running_loop()
    missing = object()
    original = namespace.get("send_receipt", missing)
    namespace["send_receipt"] = receipts
    sleep = _SleepWatch(loop_thread)
    try:
        done = await _suite_on("sqlite", create_store_app, receipts, sleep)
        await _suite_on("postgresql", create_store_app, receipts, sleep)
    finally:
        if original is missing:
            namespace.pop("send_receipt", None)
        else:
            namespace["send_receipt"] = original
    return ("the hidden suite passed on SQLite and on PostgreSQL, each time with two instances "
            "of your app on one database: " + "; ".join(done) + "; no blocking; each start-up "
            "made its own engine and disposed of it.")


q4 = Exercise(
    "q4", "create_store_app", _check_create_store_app,
    hints=["Start from lesson 09's create_app: a lifespan that creates the engine and yields "
           "{'engine': engine, 'sessionmaker': ...}; each route takes its session from "
           "`get_store_session` (given above, `StoreSessionDep`). Then one route at a time, "
           "checking as you go.",
           "POST /orders, in one transaction, in this order. 1) One SELECT of the unit prices "
           "(`select(Track.track_id, Track.unit_price).where(Track.track_id.in_(ids))`): a "
           "track missing from it is a 404, before anything is written. 2) The total, in "
           "Decimals: `sum((price * quantity ...), Decimal(0))`. 3) Claim the Idempotency-Key "
           "by inserting the order with that total "
           "(`insert(store_order).values(customer_id=..., idempotency_key=..., total=...)"
           ".returning(store_order.c.order_id)`); an IntegrityError there means the key was "
           "used: roll back, read the stored order by its key and answer 200 with it. 4) Per "
           "line, `update(stock).where(stock.c.track_id == t, stock.c.quantity >= q)"
           ".values(quantity=stock.c.quantity - q)` and `rowcount == 1`, else roll back and "
           "409. 5) Insert the lines, commit, then `await asyncio.to_thread(send_receipt, "
           "order_id)`.",
           "Why the key before the stock: a retry sent while the first request is still "
           "running waits at its INSERT for the first one to commit, then fails on the unique key and reads the "
           "order; had it taken stock first, it would have lost the last copy to its own first "
           "request (409). Pages of orders: one query for the page's ids, `ORDER BY order_id`, "
           "one for all their lines (`in_`)."],
    limit=90.0,
    title="The capstone: a music store that takes orders",
)
