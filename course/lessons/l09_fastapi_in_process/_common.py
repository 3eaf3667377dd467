"""What lesson 09's checks share: a fresh database, the learner's route mounted and served in process, requests and their verdicts."""

from __future__ import annotations

import gc
import inspect
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from course.checking.backends import prepared_url
from course.checking.checks import LearnerError, Wrong, call
from course.checking.races import BASE, UNIQUE_NAMES
from course.db.engines import Backend
from course.errors import remember
from course.probes import (
    ConnectionLeaks,
    checked_out,
)


async def _database(name: str, backend: Backend = "sqlite", *statements: tuple[str, dict]) -> Any:
    """A fresh Chinook copy with the unique index on artist names (the lesson adds the same one),
    plus any setup statements: all done before the learner's code runs."""
    from sqlalchemy import text

    async def prepare(engine: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(UNIQUE_NAMES))
            for sql, params in statements:
                await conn.execute(text(sql), params)

    return await prepared_url(name, backend, prepare)


def _has_star_args(fn: Any) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


async def _mountable(fn: Any, name: str) -> None:
    """FastAPI reads a route's parameters from its signature, so *args/**kwargs cannot be a route.
    Such a function is run once directly: the untouched stub says so by raising."""
    if _has_star_args(fn):
        await call(fn)
        raise Wrong(f"{name} takes *args or **kwargs; a route's parameters are what the request "
                    "provides (path, query, body) and its dependencies: name each one.")


@asynccontextmanager
async def _served(url: Any, routes: list[tuple[str, str, Any, int | None]],
                  **engine_options: Any) -> AsyncIterator[tuple[Any, Any]]:
    """An app with a lifespan that owns an engine on `url` and yields {"sessionmaker": ...},
    the learner's routes mounted on it, and an in-process client: (client, engine)."""
    import httpx
    from asgi_lifespan import LifespanManager
    from fastapi import FastAPI
    from fastapi.exceptions import FastAPIError
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    engine = create_async_engine(url, **engine_options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}

    app = FastAPI(lifespan=lifespan)
    try:
        for path, method, fn, status in routes:
            try:
                app.add_api_route(path, fn, methods=[method], status_code=status)
            except (FastAPIError, TypeError, ValueError) as exc:
                raise Wrong(f"FastAPI could not make a route of {fn.__name__}: "
                            f"{str(exc).splitlines()[0]}") from None
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                with _LeakWatch(engine) as watch:
                    _WATCHES[client] = watch
                    try:
                        yield client, engine
                    finally:
                        left = await watch.close_all()
                    if left:
                        raise Wrong(KEPT.format(n=left))
    finally:
        await engine.dispose()


DROPPED = ("{what}: {n} connection(s) were dropped without being closed: the garbage collector "
           "found them still checked out of the pool after the request (the check closed them). "
           "Use the session the dependency gives you (`session: SessionDep`), and `async with` "
           "around any session or connection you open yourself, so it goes back to the pool.")


KEPT = ("{n} connection(s) your routes opened were never given back to the pool by the end of "
        "the check (the check closed them): a session or connection opened by hand, or kept from "
        "one request to the next, and never closed. Use the session the dependency gives you "
        "(`session: SessionDep`), which is closed after every request.")


class _LeakWatch(ConnectionLeaks):
    """ConnectionLeaks on one served app's engine, with the requests in flight counted: the
    connections dropped unclosed are settled (closed, quietly, and counted) once none is; at
    the end, close_all() closes every connection never given back, however it was kept."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.in_flight = 0
        self._all: dict[int, tuple[Any, Any, Any]] = {}

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        super()._checkout(dbapi_connection, record, proxy)
        self._all[id(record)] = self._out[id(record)]

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        super()._checkin(dbapi_connection, record)
        self._all.pop(id(record), None)

    async def close_all(self) -> int:
        """Close every connection not given back (a full collection first finds those dropped
        in a reference cycle); return how many."""
        self._out, self._all = self._all, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        return await self.settle(held=True)


_WATCHES: weakref.WeakKeyDictionary[Any, _LeakWatch] = weakref.WeakKeyDictionary()


class _BadResponse(Wrong):
    """The route returned something its response model could not serialise."""

    def __init__(self, message: str, returned_none: bool) -> None:
        super().__init__(message)
        self.returned_none = returned_none


async def _send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request, with the learner's errors turned into plain words, and the connections its
    route dropped unclosed reported (closed here, so nothing about them prints later)."""
    watch = _WATCHES.get(client)
    if watch is None:
        return await _request(client, method, path, **kwargs)
    watch.in_flight += 1
    dropped = 0
    try:
        response = await _request(client, method, path, **kwargs)
    finally:
        watch.in_flight -= 1
        if not watch.in_flight:
            dropped = await watch.settle(held=False)
    if dropped:
        raise Wrong(DROPPED.format(what=f"{method} {path}", n=dropped))
    return response


async def _request(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    from fastapi.exceptions import ResponseValidationError

    what = f"{method} {path}"
    try:
        return await call(client.request, method, path, **kwargs)
    except Wrong as exc:  # call() saw a coroutine where a result belonged: "forgot await"
        if isinstance(exc.__cause__, ResponseValidationError):
            for error in exc.__cause__.errors():
                if inspect.iscoroutine(error.get("input")):
                    error["input"].close()  # else it warns "never awaited" under a later cell
        raise
    except LearnerError as exc:
        cause = exc.__cause__
        if not isinstance(cause, ResponseValidationError):
            raise
        errors = list(cause.errors())
        inputs = [e.get("input") for e in errors]
        if any(inspect.iscoroutine(i) for i in inputs):
            for value in inputs:
                if inspect.iscoroutine(value):
                    value.close()  # it would warn "never awaited" later, under another cell
            raise Wrong(f"{what}: your route returned a coroutine object instead of the row: "
                        "did you forget `await`? Write `await session.get(...)`.") from None
        returned_none = any(i is None for i in inputs)
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "the response"
        message = str(first.get("msg", ""))
        if "greenlet" in message.lower():
            remember(cause)
            raise _BadResponse(
                f"{what}: the response model reads `{where}`, which your query did not load, so "
                "SQLAlchemy tried to load it lazily and failed (MissingGreenlet: "
                "`course.explain()` says more). Load it in the query: "
                "`options=[selectinload(...)]`.", returned_none) from None
        raise _BadResponse(f"{what}: what your route returned does not fit its response model "
                           f"({where}: {message}).", returned_none) from None


def _status(response: Any, expected: int, what: str, why: str = "") -> None:
    if response.status_code != expected:
        body = response.text if len(response.text) <= 120 else response.text[:117] + "..."
        raise Wrong(f"{what} answered {response.status_code} {body}; expected {expected}"
                    + (f": {why}" if why else "."))


def _leaks(engine: Any, what: str) -> None:
    out = checked_out(engine)
    if out:
        raise Wrong(f"after {what}, {out} connection(s) were still checked out of the pool: "
                    "most likely a session opened by hand, or kept from one request to the next, "
                    "was never closed. Use the session the dependency "
                    "gives you (`session: SessionDep`), which is closed after every request.")


