"""q1: create_app, a lifespan that owns the engine."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.checking.races import BASE
from course.probes import (
    checked_out,
)

from ._common import _database


async def _state_probe(request: Request) -> dict:
    """Mounted on the learner's app: reports what the lifespan left in the request's state."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from course.models import Artist

    sessionmaker = getattr(request.state, "sessionmaker", None)
    report: dict[str, Any] = {"sessionmaker": sessionmaker,
                              "on_app": getattr(request.app.state, "sessionmaker", None)}
    if isinstance(sessionmaker, async_sessionmaker):
        async with sessionmaker() as session:
            report["artists"] = await session.scalar(select(func.count()).select_from(Artist))
    request.app.state.check_reports.append(report)
    return {}


async def _run_app(app: Any) -> dict:
    """One start-up, one request, one shutdown of the learner's app: what the request saw."""
    import httpx
    from asgi_lifespan import LifespanManager

    reports = app.state.check_reports
    before = len(reports)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            response = await client.get("/_check/state")
    if len(reports) == before:
        raise Wrong(f"the check's request to the app answered {response.status_code} "
                    f"{response.text[:100]}, before reaching its route.")
    return reports[-1]


def _engine_of(report: dict, what: str) -> Any:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    sessionmaker = report["sessionmaker"]
    if sessionmaker is None:
        if report["on_app"] is not None:
            raise Wrong(f"{what}: the sessionmaker is in app.state, but the workbook's "
                        "get_session reads request.state.sessionmaker: yield it from the "
                        "lifespan, `yield {'sessionmaker': sessionmaker}`, and the server hands "
                        "that state to every request.")
        raise Wrong(f"{what}: after start-up, request.state has no `sessionmaker`. The lifespan "
                    "should create the engine, then `yield {'sessionmaker': "
                    "async_sessionmaker(engine, expire_on_commit=False)}`.")
    if not isinstance(sessionmaker, async_sessionmaker):
        raise Wrong(f"{what}: request.state.sessionmaker is a {type(sessionmaker).__name__}; it "
                    "should be `async_sessionmaker(engine, expire_on_commit=False)`.")
    if sessionmaker.kw.get("expire_on_commit", True) is not False:
        raise Wrong(f"{what}: the sessionmaker keeps expire_on_commit=True (the default). A route "
                    "that commits and then returns the object would make FastAPI read expired "
                    "attributes, which needs SQL, and fail with MissingGreenlet: pass "
                    "`expire_on_commit=False`.")
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise Wrong(f"{what}: the sessionmaker is bound to {type(engine).__name__}, not to an "
                    "engine from create_async_engine(url).")
    return engine


def _disposed(engine: Any, what: str) -> None:
    idle, out = engine.pool.checkedin(), checked_out(engine)
    if idle or out:
        raise Wrong(f"{what}: after shutdown the engine still held {idle + out} open "
                    "connection(s): the lifespan should end with `await engine.dispose()`, after "
                    "its `yield`.")


async def _check_create_app(create_app) -> str:
    from fastapi import FastAPI

    url_a = await _database("check-09-q1a")
    url_b = await _database("check-09-q1b", "sqlite",
                            ("INSERT INTO artist (artist_id, name) VALUES (:i, :n)",
                             {"i": 9001, "n": "Only in database B"}))
    engines: list[Any] = []
    try:
        apps = []
        for url, label in ((url_a, "A"), (url_b, "B")):
            app = await call(create_app, url.render_as_string(hide_password=False))
            if not isinstance(app, FastAPI):
                raise Wrong(f"create_app(url) should return the FastAPI app; it returned "
                            f"{type(app).__name__}.")
            if app.router.on_startup or app.router.on_shutdown:
                raise Wrong("the app uses @app.on_event handlers, which are deprecated (and "
                            "ignored altogether once lifespan= is given): pass "
                            "`FastAPI(lifespan=lifespan)`, with the start-up code before the "
                            "`yield` and the shutdown code after it.")
            if apps and app is apps[0]:
                raise Wrong("create_app returned the same app object twice: build a new "
                            "FastAPI(lifespan=...) in every call.")
            app.state.check_reports = []
            app.add_api_route("/_check/state", _state_probe, methods=["GET"])
            apps.append((app, label))

        first: Any = None
        for run, (app, label) in enumerate([apps[0], apps[1], apps[0]]):
            what = f"the app for database {label}" + (", started a second time" if run == 2 else "")
            try:
                report = await call(_run_app, app)
            except LearnerError as exc:
                text = str(exc)
                if "dictionary update sequence" in text or "not iterable" in text:
                    raise Wrong("the lifespan must yield a dict, its state: "
                                "`yield {'sessionmaker': sessionmaker}`.") from None
                raise
            engine = _engine_of(report, what)
            engines.append(engine)
            expected = 276 if label == "B" else 275
            if report.get("artists") != expected:
                raise Wrong(f"{what} read {report.get('artists')} artists; database {label} has "
                            f"{expected}. create_app(url) must open its engine on the url it is "
                            "given, not on one fixed when the module ran.")
            _disposed(engine, what)
            if run == 0:
                first = engine
            elif run == 2 and engine is first:
                raise Wrong("both start-ups of one app used the same engine object, which the "
                            "first shutdown had already disposed: it was made once (when "
                            "create_app ran, or at the first start-up and then kept) and not "
                            "again. Create a new one inside the lifespan, before `yield`, every "
                            "time the lifespan runs, so that each start-up owns the engine that "
                            "its shutdown disposes.")
    finally:
        for engine in engines:
            await engine.dispose()
    return ("three start-ups on two databases: each made its own engine from the url it was "
            "given, yielded an async_sessionmaker, and disposed the engine at shutdown.")


q1 = Exercise(
    "q1", "create_app", _check_create_app,
    hints=["A lifespan is one function for the app's whole life: what runs before its `yield` "
           "runs at start-up, what runs after it at shutdown, and what it yields becomes every "
           "request's `request.state`. Define it inside create_app, so that it sees `url`.",
           "Start-up makes the engine from `url` and an async_sessionmaker on it with "
           "expire_on_commit=False, and yields the dict {'sessionmaker': ...}; shutdown disposes "
           "of the engine, in a `finally:`. create_app returns `FastAPI(lifespan=...)`.",
           "`@asynccontextmanager async def lifespan(app: FastAPI):` / `engine = "
           "create_async_engine(url)` / `try: yield {'sessionmaker': async_sessionmaker(engine, "
           "expire_on_commit=False)}` / `finally: await engine.dispose()`; then `return "
           "FastAPI(lifespan=lifespan)`."],
    title="A lifespan that owns the engine",
)
