"""q4, the capstone: two instances of the learner's app on each backend, and the check."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.requests import Request

from course.apps.capstone_tools import prepare_capstone
from course.checking.checks import Exercise, Wrong, call
from course.checking.races import BASE
from course.db.engines import Backend

from ._q4_listings import _Suite
from ._q4_probes import _Connections, _FloatMoney, _Receipts, _SleepWatch
from ._q4_suite import _Instance


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
                time.sleep = sleep.real
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
