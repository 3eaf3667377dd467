"""q2: the app with the test's session, through dependency_overrides."""

from __future__ import annotations

import inspect
from typing import Any

from course.apps.capstone_tools import take_over_begin
from course.apps.music_store import SessionDep
from course.checking.checks import Exercise, LearnerError, Wrong, call

from ._common import _count_artists, _database, _finish, _first, _not_a_generator

NAME = "The Check O'Haras \"Trio\""  # the artist the test creates through the app
EARLY = "The Check's own row"  # a row the test commits itself, between two requests


async def _check_client_with_session(client_with_session) -> str:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from course.apps import music_store

    url = await _database("check-11-q2", unique_names=False)  # the app's lifespan adds the index
    engine = take_over_begin(create_async_engine(url))
    app = music_store.create_app(url)
    # the suite already overrides a dependency of its own: the fixture must leave it in place
    app.dependency_overrides[get_settings] = _suite_settings
    what = "client_with_session(app, session)"
    name = NAME
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
            agen, client = await _started(client_with_session, app, session, what)
            try:
                await _requests(client, session, received, what)
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


async def _started(client_with_session: Any, app: Any, session: Any, what: str) -> tuple[Any, Any]:
    """Call the learner's fixture and take what it yields: an httpx.AsyncClient, with the app's
    get_session overridden."""
    import httpx

    from course.apps import music_store

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
    return agen, client


async def _requests(client: Any, session: Any, received: list, what: str) -> None:
    """The test's requests through the learner's client, with the test's own work between them:
    each request must use the test's session, and a 409's rollback must end only a SAVEPOINT."""
    from sqlalchemy import func, select

    from course.models import Artist

    name, early = NAME, EARLY
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
    hints=["FastAPI lets a test swap a dependency for one of its own: hand the routes the "
           "test's session through the app's dependency_overrides, keyed by the very function "
           "the routes depend on, and serve the app in process with its lifespan.",
           "`async def test_session(): yield session`, then `app.dependency_overrides[get_session] "
           "= test_session`; the client: `async with LifespanManager(app) as "
           "manager:` and `httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), "
           "base_url=...)`; `yield client` inside both.",
           "Put the whole body in `try:` / `finally: app.dependency_overrides.pop(get_session, "
           "None)`, so the next test gets the app's own dependency back and any override the "
           "app already had stays (`.clear()` would remove those too)."],
    limit=20.0,
    title="The app on the test's session: dependency_overrides",
)
