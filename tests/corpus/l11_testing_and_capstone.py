"""Wrong answers to exercises/11-testing-and-capstone-workbook.ipynb.

q1 and q2's answers are fixtures with one mistake each. q3's answers are test modules (text);
each misses one planted bug, or cannot run. q4's answers are the reference store with one
mistake each, chosen by `bug`: the check swaps `send_receipt` in this module's globals, as it
does in the workbook's.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from course.apps.music_store import get_session
from course.apps.store_orders import stock, store_order, store_order_line
from course.models import Track
from tests.corpus import correct, wrong


def send_receipt(order_id: int) -> None:
    """Stands for a blocking e-mail client: it holds its thread for a while."""
    time.sleep(0.2)


class LineIn(BaseModel):
    track_id: int
    quantity: int = Field(ge=1, le=10)


class OrderIn(BaseModel):
    customer_id: int
    lines: list[LineIn] = Field(min_length=1, max_length=20)


class LineOut(BaseModel):
    track_id: int
    quantity: int
    unit_price: Decimal


class OrderOut(BaseModel):
    order_id: int
    customer_id: int
    total: Decimal
    lines: list[LineOut]


class TrackHit(BaseModel):
    track_id: int
    name: str
    unit_price: Decimal
    stock: int


async def get_store_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.state.sessionmaker() as session:
        yield session


StoreSessionDep = Annotated[AsyncSession, Depends(get_store_session)]
Page = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0)]


_CACHED: dict[str, AsyncEngine] = {}


def _store(url: str, bug: str) -> FastAPI:
    """The reference store, or a copy of it with the mistake `bug`."""
    made_early = create_async_engine(url) if bug == "engine_outside_lifespan" else None
    orders_lock = asyncio.Lock()  # bug "asyncio_lock": serialises the orders of this app only

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if bug == "cached_engine":  # made in the lifespan, but kept for the next start-up
            engine = _CACHED.get(url) or _CACHED.setdefault(url, create_async_engine(url))
        elif bug == "nullpool":  # correct: any pool class will do
            from sqlalchemy.pool import NullPool

            engine = create_async_engine(url, poolclass=NullPool)
        else:
            engine = made_early or create_async_engine(url)
        try:
            yield {"engine": engine,
                   "sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        finally:
            if bug != "no_dispose":
                await engine.dispose()

    app = FastAPI(title="Music store orders", lifespan=lifespan)

    async def load_orders(session: AsyncSession, order_ids: list[int]) -> list[OrderOut]:
        """The orders with these ids and their lines, in two statements, in the ids' order."""
        if not order_ids:
            return []
        heads = (await session.execute(
            select(store_order.c.order_id, store_order.c.customer_id, store_order.c.total)
            .where(store_order.c.order_id.in_(order_ids)))).all()
        lines = (await session.execute(
            select(store_order_line).where(store_order_line.c.order_id.in_(order_ids))
            .order_by(store_order_line.c.order_id, store_order_line.c.line_no))).all()
        by_order: dict[int, list[LineOut]] = {i: [] for i in order_ids}
        for line in lines:
            by_order[line.order_id].append(LineOut(track_id=line.track_id,
                                                   quantity=line.quantity,
                                                   unit_price=line.unit_price))
        if bug == "lines_keyed_by_track":  # a track on two lines comes back once
            by_order = {i: list({ln.track_id: ln for ln in got}.values())
                        for i, got in by_order.items()}
        found = {h.order_id: h for h in heads}
        return [OrderOut(order_id=i, customer_id=found[i].customer_id, total=found[i].total,
                         lines=by_order[i]) for i in order_ids if i in found]

    async def order_by_key(session: AsyncSession, key: str) -> OrderOut | None:
        order_id = await session.scalar(
            select(store_order.c.order_id).where(store_order.c.idempotency_key == key))
        return None if order_id is None else (await load_orders(session, [order_id]))[0]

    @app.post("/orders", status_code=201)
    async def create_order(new: OrderIn, session: StoreSessionDep, response: Response,
                           idempotency_key: Annotated[str, Header(min_length=1, max_length=100)]
                           ) -> OrderOut:
        wanted = {line.track_id for line in new.lines}
        prices = dict((await session.execute(
            select(Track.track_id, Track.unit_price).where(Track.track_id.in_(wanted)))).all())
        missing = sorted(wanted - prices.keys())
        if missing:
            raise HTTPException(status_code=404, detail=f"no track {missing[0]}")
        total = sum((prices[line.track_id] * line.quantity for line in new.lines), Decimal(0))
        if bug == "float_rounded":  # a float, rounded to the cent: still a float
            total = round(sum(float(prices[ln.track_id]) * ln.quantity for ln in new.lines), 2)
        if bug == "lookup_first":  # the old hint 2: look the key up, then take stock
            return await _lookup_first(session, response, new, idempotency_key, prices, total,
                                       order_by_key, load_orders)
        if bug == "asyncio_lock":
            async with orders_lock:
                return await _python_check(session, response, new, idempotency_key, prices,
                                           total, order_by_key, load_orders)
        if bug == "python_check":
            return await _python_check(session, response, new, idempotency_key, prices, total,
                                       order_by_key, load_orders)
        try:  # claim the key first: a retry waits here for the first request, then fails
            order_id = await session.scalar(
                insert(store_order).values(customer_id=new.customer_id,
                                           idempotency_key=idempotency_key, total=total)
                .returning(store_order.c.order_id))
        except IntegrityError:  # the key was used: answer with the stored order
            if bug == "race_500":
                raise
            await session.rollback()
            replay = await order_by_key(session, idempotency_key)
            if replay is None:
                raise
            if bug != "replay_201":
                response.status_code = 200
            return replay
        for line in new.lines:  # one UPDATE per line: it checks and takes the stock at once
            taken = await session.execute(
                update(stock).where(stock.c.track_id == line.track_id,
                                    stock.c.quantity >= line.quantity)
                .values(quantity=stock.c.quantity - line.quantity))
            if bug == "commit_per_line":
                await session.commit()  # each line on its own: a later 409 cannot undo it
            if taken.rowcount != 1:
                await session.rollback()
                raise HTTPException(status_code=409,
                                    detail=f"not enough stock of track {line.track_id}")
        lines = [(line.track_id, line.quantity) for line in new.lines]
        if bug == "merged_lines":  # one line per track, the quantities added up
            merged: dict[int, int] = {}
            for track_id, quantity in lines:
                merged[track_id] = merged.get(track_id, 0) + quantity
            lines = list(merged.items())
        await session.execute(insert(store_order_line), [
            {"order_id": order_id, "line_no": n, "track_id": track_id,
             "quantity": quantity, "unit_price": prices[track_id]}
            for n, (track_id, quantity) in enumerate(lines, start=1)])
        if bug == "receipt_before_commit":
            await asyncio.to_thread(send_receipt, order_id)
            await session.commit()
            return (await load_orders(session, [order_id]))[0]
        await session.commit()
        if bug == "blocking_receipt":
            send_receipt(order_id)  # on the loop's thread
        else:
            await asyncio.to_thread(send_receipt, order_id)
        return (await load_orders(session, [order_id]))[0]

    @app.get("/orders/{order_id}")
    async def read_order(order_id: int, session: StoreSessionDep) -> OrderOut:
        found = await load_orders(session, [order_id])
        if not found:
            raise HTTPException(status_code=404, detail=f"order {order_id} not found")
        return found[0]

    @app.get("/orders")
    async def list_orders(session: StoreSessionDep, limit: Page = 20, offset: Offset = 0
                          ) -> list[OrderOut]:
        page = select(store_order.c.order_id).limit(limit).offset(offset)
        if bug != "unordered_page":  # without ORDER BY, rows come in the table's own order
            page = page.order_by(store_order.c.order_id)
        ids = (await session.scalars(page)).all()
        if bug == "n_plus_one":
            return [(await load_orders(session, [i]))[0] for i in ids]  # 2 queries per order
        return await load_orders(session, list(ids))

    @app.get("/tracks")
    async def search_tracks(session: StoreSessionDep, q: str = "", limit: Page = 20,
                            offset: Offset = 0) -> list[TrackHit]:
        rows = (await session.execute(
            select(Track.track_id, Track.name, Track.unit_price, stock.c.quantity.label("stock"))
            .join(stock, stock.c.track_id == Track.track_id)
            .where(Track.name.ilike(f"%{q}%") if bug == "like_unescaped"
                   else Track.name.contains(q, autoescape=True) if bug == "case_sensitive"
                   else Track.name.icontains(q, autoescape=True))
            .order_by(Track.track_id).limit(limit).offset(offset))).all()
        return [TrackHit(**row._mapping) for row in rows]

    return app


async def _lookup_first(session, response, new, key, prices, total, order_by_key, load_orders):
    """The key looked up, then the stock taken, then the order inserted: a retry racing its
    first request for the last copy loses the copy (409) instead of answering 200."""
    replay = await order_by_key(session, key)
    if replay is not None:
        response.status_code = 200
        return replay
    try:
        for line in new.lines:
            taken = await session.execute(
                update(stock).where(stock.c.track_id == line.track_id,
                                    stock.c.quantity >= line.quantity)
                .values(quantity=stock.c.quantity - line.quantity))
            if taken.rowcount != 1:
                await session.rollback()
                raise HTTPException(status_code=409, detail="not enough stock")
        order_id = await session.scalar(
            insert(store_order).values(customer_id=new.customer_id, idempotency_key=key,
                                       total=total).returning(store_order.c.order_id))
        await session.execute(insert(store_order_line), [
            {"order_id": order_id, "line_no": n, "track_id": line.track_id,
             "quantity": line.quantity, "unit_price": prices[line.track_id]}
            for n, line in enumerate(new.lines, start=1)])
        await session.commit()
    except IntegrityError:
        await session.rollback()
        response.status_code = 200
        return await order_by_key(session, key)
    await asyncio.to_thread(send_receipt, order_id)
    return (await load_orders(session, [order_id]))[0]


async def _python_check(session, response, new, key, prices, total, order_by_key, load_orders):
    """The order inserted first, then each stock read and compared in Python, and the new
    quantity written: on SQLite the INSERT took the single write lock, so it holds there."""
    try:
        order_id = await session.scalar(
            insert(store_order).values(customer_id=new.customer_id, idempotency_key=key,
                                       total=total).returning(store_order.c.order_id))
    except IntegrityError:
        await session.rollback()
        response.status_code = 200
        return await order_by_key(session, key)
    for n, line in enumerate(new.lines, start=1):
        have = await session.scalar(select(stock.c.quantity)
                                    .where(stock.c.track_id == line.track_id))
        if have < line.quantity:
            await session.rollback()
            raise HTTPException(status_code=409, detail="not enough stock")
        await session.execute(update(stock).where(stock.c.track_id == line.track_id)
                              .values(quantity=have - line.quantity))
        await session.execute(insert(store_order_line).values(
            order_id=order_id, line_no=n, track_id=line.track_id, quantity=line.quantity,
            unit_price=prices[line.track_id]))
    await session.commit()
    await asyncio.to_thread(send_receipt, order_id)
    return (await load_orders(session, [order_id]))[0]


# --- q1: rolled_back_session -----------------------------------------------------------------------

@wrong("q1", expect="is bound to AsyncEngine")
async def session_on_the_engine(engine):
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session


@wrong("q1", expect="had no transaction when the test began")
async def no_outer_transaction(engine):
    async with engine.connect() as conn:
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        yield session
        await session.close()
        await conn.rollback()


@wrong("q1", expect="conditional_savepoint")
async def default_join_mode(engine):
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, expire_on_commit=False)
        yield session
        await session.close()
        await transaction.rollback()


@wrong("q1", expect="commit the test's outer transaction for real")
async def control_fully(engine):
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="control_fully")
        yield session
        await session.close()
        if transaction.is_active:
            await transaction.rollback()


@wrong("q1", expect="join_transaction_mode='rollback_only'")
async def rollback_only(engine):
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="rollback_only")
        yield session
        await session.close()
        if transaction.is_active:
            await transaction.rollback()


@wrong("q1", expect="was committed, not rolled back")
async def engine_begin_commits(engine):
    async with engine.begin() as conn:  # commits when the block ends
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        yield session
        await session.close()


@wrong("q1", expect="still checked out")
async def connection_never_closed(engine):
    conn = await engine.connect()
    transaction = await conn.begin()
    session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
    yield session
    await session.close()
    await transaction.rollback()
    _KEPT.append(conn)  # kept, never closed


_KEPT: list = []


@wrong("q1", expect="async generator")
async def returns_the_session(engine):
    conn = await engine.connect()
    _KEPT.append(conn)
    await conn.begin()
    return AsyncSession(bind=conn, join_transaction_mode="create_savepoint")


# --- q2: client_with_session -----------------------------------------------------------------------

@wrong("q2", expect="not the app's own get_session")
async def overrides_a_lookalike(app, session):
    async def get_session():  # a new function with the same name: FastAPI never asks for it
        yield session

    app.dependency_overrides[get_session] = get_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.clear()


@wrong("q2", expect="still held the override")
async def override_never_cleared(app, session):
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@wrong("q2", expect="base_url=")
async def client_without_base_url(app, session):
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app)) as client:
                yield client
    finally:
        app.dependency_overrides.clear()


@wrong("q2", expect="lifespan, which did not run")
async def no_lifespan(app, session):
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            yield client
    finally:
        app.dependency_overrides.clear()


@wrong("q2", expect="async generator")
async def returns_the_client(app, session):
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@wrong("q2", expect="did not use the test's session")
async def override_with_a_new_session(app, session):
    async def a_new_session(request: Request):
        async with request.state.sessionmaker() as own:
            yield own

    app.dependency_overrides[get_session] = a_new_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.clear()


# --- q3: store_tests -------------------------------------------------------------------------------

TESTS = '''
import pytest

pytestmark = pytest.mark.anyio


async def test_artist(client):
    response = await client.get("/artists/1")
    assert response.status_code == 200
    assert response.json() == {"artist_id": 1, "name": "AC/DC"}


async def test_missing_artist_is_404(client):
    response = await client.get("/artists/999999")
    assert response.status_code == 404


async def test_repeated_name_is_409_and_the_store_still_works(client):
    first = await client.post("/artists", json={"name": "The Testers", "albums": ["One"]})
    assert first.status_code == 201
    again = await client.post("/artists", json={"name": "THE TESTERS"})
    assert again.status_code == 409
    assert (await client.get(f"/artists/{first.json()['artist_id']}")).status_code == 200


async def test_pages_follow_each_other(client):
    first = (await client.get("/tracks", params={"limit": 10})).json()
    second = (await client.get("/tracks", params={"limit": 10, "offset": 10})).json()
    ids = [t["track_id"] for t in first + second]
    assert ids == sorted(set(ids)) and len(ids) == 20
    assert ids[:3] == [1, 2, 3]


async def test_a_page_takes_few_statements(client, statements):
    statements.clear()
    response = await client.get("/tracks", params={"limit": 50})
    assert response.status_code == 200 and len(response.json()) == 50
    assert len(statements) <= 3, statements


async def test_album_does_not_block_the_loop(client, blocking_calls):
    response = await client.get("/albums/1")
    assert response.status_code == 200
    assert len(response.json()["tracks"]) == 10
    assert blocking_calls == []
'''


def _without(test_name: str) -> str:
    """The reference module without one of its tests."""
    head, _, rest = TESTS.partition(f"async def {test_name}(")
    _, _, tail = rest.partition("\n\n\nasync def ")
    return head + ("async def " + tail if tail else "")


@correct("q3")
def tests_count_statements_asked_for_before_the_client():
    """`statements` listed before `client`, and never cleared: the fixture starts counting once
    the app has started, so the app's own start-up SQL is not in the list."""
    return TESTS.replace("async def test_a_page_takes_few_statements(client, statements):\n"
                         "    statements.clear()\n",
                         "async def test_a_page_takes_few_statements(statements, client):\n")


@correct("q3")
def tests_count_statements_without_clearing_them():
    return TESTS.replace("    statements.clear()\n", "")


@wrong("q3", expect="miss the N+1 queries")
def tests_without_statement_count():
    return _without("test_a_page_takes_few_statements")


@wrong("q3", expect="miss the blocking call")
def tests_without_blocking_check():
    return _without("test_album_does_not_block_the_loop")


@wrong("q3", expect="miss the off-by-one page")
def tests_of_the_first_page_only():
    return _without("test_pages_follow_each_other")


@wrong("q3", expect="miss the 200 for a missing artist")
def tests_without_404():
    return _without("test_missing_artist_is_404")


@wrong("q3", expect="miss the missing rollback")
def tests_without_409():
    return _without("test_repeated_name_is_409_and_the_store_still_works")


@wrong("q3", expect="fails against the correct app")
def test_with_a_wrong_expectation():
    return TESTS.replace('"name": "AC/DC"', '"name": "ACDC"')


@wrong("q3", expect="without `@pytest.mark.anyio`")
def tests_without_the_mark():
    return TESTS.replace("pytestmark = pytest.mark.anyio", "")


@wrong("q3", expect="does not compile")
def tests_with_a_syntax_error():
    return TESTS.replace("async def test_artist(client):", "async def test_artist(client)")


# q3's differently-correct modules: parametrized tests (whose instances must each count),
# a test class and fixtures of the learner's own. One module covers several forms, because each
# answer costs a pytest run.

PARAMETRIZED = '''
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def testers(client):
    """An artist of the test's own, made through the app."""
    response = await client.post("/artists", json={"name": "The Testers", "albums": ["One"]})
    assert response.status_code == 201
    return response.json()


@pytest.mark.parametrize(("artist_id", "status"), [ORDER])
async def test_artist_status(client, artist_id, status):
    assert (await client.get(f"/artists/{artist_id}")).status_code == status


class TestArtists:
    async def test_repeated_name_is_409(self, client, testers):
        assert (await client.post("/artists", json={"name": "THE TESTERS"})).status_code == 409

    async def test_the_store_still_works_after_a_409(self, client, testers):
        await client.post("/artists", json={"name": "the testers"})
        response = await client.get(f"/artists/{testers['artist_id']}")
        assert response.status_code == 200 and response.json()["name"] == "The Testers"


@pytest.mark.parametrize("size", [5, 10])
async def test_pages_follow_each_other(client, size):
    first = (await client.get("/tracks", params={"limit": size})).json()
    second = (await client.get("/tracks", params={"limit": size, "offset": size})).json()
    ids = [t["track_id"] for t in first + second]
    assert ids == list(range(1, 2 * size + 1))


@pytest.mark.parametrize("limit", [1, 50])
async def test_a_page_takes_few_statements(client, statements, limit):
    statements.clear()
    response = await client.get("/tracks", params={"limit": limit})
    assert len(response.json()) == limit
    assert len(statements) <= 3


@pytest.mark.parametrize("album_id", [1, 2])
async def test_album_does_not_block_the_loop(client, blocking_calls, album_id):
    assert (await client.get(f"/albums/{album_id}")).status_code == 200
    assert blocking_calls == []
'''


@correct("q3")
def tests_parametrized_with_a_class_and_fixtures():
    """Parametrized tests whose last instance passes on the bug (a 200 for artist 1 after the
    404 for 999999): each instance must count on its own, not the last one run."""
    return PARAMETRIZED.replace("[ORDER]", "[(999999, 404), (1, 200)]")


@correct("q3")
def tests_parametrized_in_the_other_order():
    """The same module with the parameters swapped: the verdict must not change."""
    return PARAMETRIZED.replace("[ORDER]", "[(1, 200), (999999, 404)]")


# --- q4: create_store_app --------------------------------------------------------------------------

@wrong("q4", expect="send_receipt ran on the event loop's own thread")
def store_blocking_receipt(url):
    return _store(url, "blocking_receipt")


@wrong("q4", expect="nothing was created, so answer 200")
def store_replay_201(url):
    return _store(url, "replay_201")


@wrong("q4", expect="catch the IntegrityError of the unique key")
def store_race_500(url):
    return _store(url, "race_500")


@wrong("q4", expect="left changes behind")
def store_commit_per_line(url):
    return _store(url, "commit_per_line")


@wrong("q4", expect="one query per order is N+1")
def store_n_plus_one(url):
    return _store(url, "n_plus_one")


@wrong("q4", expect="% and _ are LIKE wildcards")
def store_like_unescaped(url):
    # q is bound, but its % and _ reach LIKE as wildcards
    return _store(url, "like_unescaped")


@wrong("q4", expect="every name returned holds 'LOVE' in exactly that case")
def store_search_case_sensitive(url):
    # contains() is LIKE: it ignores case on SQLite only, so PostgreSQL finds fewer
    return _store(url, "case_sensitive")


@wrong("q4", expect="await engine.dispose()")
def store_never_disposes(url):
    return _store(url, "no_dispose")


@wrong("q4", expect="second start-up gave request.state the same engine")
def store_engine_outside_lifespan(url):
    return _store(url, "engine_outside_lifespan")


@wrong("q4", expect="were given the same engine in request.state")
def store_engine_cached_in_a_global(url):
    """The engine made in the lifespan, but cached in a global and reused by the next
    start-up: the message says what was seen, not that it was made outside the lifespan."""
    return _store(url, "cached_engine")


@wrong("q4", expect="[201, 409, 409, 409, 409]")
def store_key_looked_up_before_the_stock(url):
    """The old hint 2: the key looked up, then stock taken, then the order inserted."""
    return _store(url, "lookup_first")


@wrong("q4", expect="[201, 201, 201, 201, 201] and left a stock of 1")
def store_stock_read_apart_from_its_write(url):
    """The order inserted first, then the stock read and written back as have - q: SQLite's
    single writer hides it; on PostgreSQL all five read 2 and write 1."""
    return _store(url, "python_check")


@wrong("q4", expect="asyncio.Lock reaches neither a second instance")
def store_orders_behind_an_asyncio_lock(url):
    """The same stale read, serialised by an asyncio.Lock of the app: one instance holds,
    two instances on one database do not."""
    return _store(url, "asyncio_lock")


@wrong("q4", expect="was not committed")
def store_receipt_before_the_commit(url):
    return _store(url, "receipt_before_commit")


@wrong("q4", expect="with 1 line(s) instead of 2")
def store_lines_of_one_track_merged(url):
    return _store(url, "merged_lines")


@wrong("q4", expect="never merged or keyed by track")
def store_lines_read_back_by_track(url):
    return _store(url, "lines_keyed_by_track")


@wrong("q4", expect="store_order.total as the float")
def store_total_float_rounded(url):
    """round(float total, 2): the JSON reads 8.94, but a float was bound for the money."""
    return _store(url, "float_rounded")


@wrong("q4", expect="without ORDER BY a database returns rows in whatever order")
def store_page_without_order_by(url):
    """The page's ids selected without ORDER BY: on SQLite they come by order_id anyway."""
    return _store(url, "unordered_page")


@correct("q4")
def store_on_a_null_pool(url):
    """An engine on NullPool: the check counts connections by pool events, not pool counters."""
    return _store(url, "nullpool")


# --- q4: five answers from the independent audit (answers3/a11.py), copied with their helpers ---
# Each is the audit's correct store with one mistake, chosen by `mode`; the rest is as written.

def _lifespan_for(url):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = create_async_engine(url)
        try:
            yield {"engine": engine, "sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
        finally:
            await engine.dispose()
    return lifespan


async def _orders(session: AsyncSession, where, limit=None, offset=0) -> list[OrderOut]:
    """Orders and their lines in two statements."""
    stmt = select(store_order).where(where).order_by(store_order.c.order_id)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    heads = (await session.execute(stmt)).all()
    if not heads:
        return []
    ids = [h.order_id for h in heads]
    lines = (await session.execute(
        select(store_order_line).where(store_order_line.c.order_id.in_(ids))
        .order_by(store_order_line.c.order_id, store_order_line.c.line_no))).all()
    by_order: dict[int, list[LineOut]] = {i: [] for i in ids}
    for ln in lines:
        by_order[ln.order_id].append(LineOut(track_id=ln.track_id, quantity=ln.quantity,
                                             unit_price=ln.unit_price))
    return [OrderOut(order_id=h.order_id, customer_id=h.customer_id, total=h.total,
                     lines=by_order[h.order_id]) for h in heads]


async def _place_lines(session: AsyncSession, order_id: int, lines: list[LineIn]) -> Decimal:
    """Prices, stock taken atomically, lines written; raises 404/409 (caller rolls back)."""
    ids = sorted({ln.track_id for ln in lines})
    prices = dict((await session.execute(
        select(Track.track_id, Track.unit_price).where(Track.track_id.in_(ids)))).all())
    missing = [i for i in ids if i not in prices]
    if missing:
        raise HTTPException(404, f"track {missing[0]} not found")
    total = Decimal("0")
    for n, ln in enumerate(lines, 1):
        taken = await session.execute(
            update(stock).where(stock.c.track_id == ln.track_id, stock.c.quantity >= ln.quantity)
            .values(quantity=stock.c.quantity - ln.quantity))
        if taken.rowcount != 1:
            raise HTTPException(409, f"track {ln.track_id} out of stock")
        await session.execute(insert(store_order_line).values(
            order_id=order_id, line_no=n, track_id=ln.track_id, quantity=ln.quantity,
            unit_price=prices[ln.track_id]))
        total += prices[ln.track_id] * ln.quantity
    return total


def _add_reads(app: FastAPI, *, n_plus_one=False, fstring_search=False):
    @app.get("/orders/{order_id}")
    async def read_order(order_id: int, session: StoreSessionDep) -> OrderOut:
        found = await _orders(session, store_order.c.order_id == order_id)
        if not found:
            raise HTTPException(404, f"order {order_id} not found")
        return found[0]

    @app.get("/orders")
    async def list_orders(session: StoreSessionDep, limit: Page = 20, offset: Offset = 0) -> list[OrderOut]:
        if not n_plus_one:
            return await _orders(session, store_order.c.order_id.is_not(None), limit, offset)
        heads = (await session.execute(select(store_order).order_by(store_order.c.order_id)
                                       .limit(limit).offset(offset))).all()
        out = []
        for h in heads:  # one query per order: N+1
            lines = (await session.execute(select(store_order_line)
                     .where(store_order_line.c.order_id == h.order_id)
                     .order_by(store_order_line.c.line_no))).all()
            out.append(OrderOut(order_id=h.order_id, customer_id=h.customer_id, total=h.total,
                                lines=[LineOut(track_id=x.track_id, quantity=x.quantity,
                                               unit_price=x.unit_price) for x in lines]))
        return out

    @app.get("/tracks")
    async def search_tracks(session: StoreSessionDep, q: str = "", limit: Page = 20,
                            offset: Offset = 0) -> list[TrackHit]:
        if fstring_search:
            rows = (await session.execute(text(
                "SELECT track.track_id, track.name, track.unit_price, stock.quantity AS stock "
                "FROM track JOIN stock ON stock.track_id = track.track_id "
                f"WHERE lower(track.name) LIKE lower('%{q}%') ORDER BY track.track_id "
                f"LIMIT {limit} OFFSET {offset}"))).all()
        else:
            rows = (await session.execute(
                select(Track.track_id, Track.name, Track.unit_price, stock.c.quantity.label("stock"))
                .join(stock, stock.c.track_id == Track.track_id)
                .where(Track.name.icontains(q, autoescape=True))
                .order_by(Track.track_id).limit(limit).offset(offset))).all()
        return [TrackHit(track_id=r.track_id, name=r.name, unit_price=r.unit_price, stock=r.stock)
                for r in rows]


def _make_app(url, *, receipt="thread", idem="insert_first", n_plus_one=False,
              fstring_search=False, per_line_commit=False, engine_at_import=False):
    if engine_at_import:
        engine = create_async_engine(url)  # made when the app is made, outside the lifespan

        @asynccontextmanager
        async def lifespan(app: FastAPI):
            yield {"engine": engine, "sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
    else:
        lifespan = _lifespan_for(url)
    app = FastAPI(lifespan=lifespan)

    async def existing(session, key):
        found = await _orders(session, store_order.c.idempotency_key == key)
        return found[0] if found else None

    @app.post("/orders", status_code=201)
    async def create_order(order: OrderIn, response: Response, session: StoreSessionDep,
                           idempotency_key: Annotated[str, Header(min_length=1, max_length=100)]) -> OrderOut:
        if idem == "select_first" or idem == "check_then_insert":
            first = await existing(session, idempotency_key)
            if first is not None:
                response.status_code = 200
                return first
        try:
            order_id = (await session.execute(
                insert(store_order).values(customer_id=order.customer_id,
                                           idempotency_key=idempotency_key, total=0)
                .returning(store_order.c.order_id))).scalar_one()
        except IntegrityError:
            if idem == "check_then_insert":
                raise
            await session.rollback()
            response.status_code = 200
            return await existing(session, idempotency_key)
        if per_line_commit:
            await session.commit()
        try:
            if per_line_commit:
                total = Decimal("0")
                for n, ln in enumerate(order.lines, 1):
                    total += await _place_lines_one(session, order_id, n, ln)
                    await session.commit()
            else:
                total = await _place_lines(session, order_id, order.lines)
        except HTTPException:
            await session.rollback()
            raise
        await session.execute(update(store_order).where(store_order.c.order_id == order_id)
                              .values(total=total))
        await session.commit()
        if receipt == "thread":
            await asyncio.to_thread(send_receipt, order_id)
        elif receipt == "executor":
            await asyncio.get_running_loop().run_in_executor(None, send_receipt, order_id)
        else:
            send_receipt(order_id)  # blocks the loop
        return (await _orders(session, store_order.c.order_id == order_id))[0]

    _add_reads(app, n_plus_one=n_plus_one, fstring_search=fstring_search)
    return app


async def _place_lines_one(session, order_id, n, ln) -> Decimal:
    price = await session.scalar(select(Track.unit_price).where(Track.track_id == ln.track_id))
    if price is None:
        raise HTTPException(404, f"track {ln.track_id} not found")
    taken = await session.execute(
        update(stock).where(stock.c.track_id == ln.track_id, stock.c.quantity >= ln.quantity)
        .values(quantity=stock.c.quantity - ln.quantity))
    if taken.rowcount != 1:
        raise HTTPException(409, f"track {ln.track_id} out of stock")
    await session.execute(insert(store_order_line).values(
        order_id=order_id, line_no=n, track_id=ln.track_id, quantity=ln.quantity, unit_price=price))
    return price * ln.quantity


def _make_app2(url, *, mode):
    """Variants of the POST /orders and /tracks routes; the rest as in c_q4_insert_first."""
    app = FastAPI(lifespan=_lifespan_for(url))

    async def existing(session, key):
        found = await _orders(session, store_order.c.idempotency_key == key)
        return found[0] if found else None

    @app.post("/orders", status_code=201)
    async def create_order(order: OrderIn, response: Response, session: StoreSessionDep,
                           idempotency_key: Annotated[str, Header()]) -> OrderOut:
        if mode == "stock_outside":
            # stock checked in its own, committed transaction before the order's transaction
            for ln in order.lines:
                have = await session.scalar(select(stock.c.quantity).where(stock.c.track_id == ln.track_id))
                if have is None:
                    raise HTTPException(404, "no such track")
                if have < ln.quantity:
                    raise HTTPException(409, "out of stock")
            await session.commit()
        try:
            order_id = (await session.execute(
                insert(store_order).values(customer_id=order.customer_id,
                                           idempotency_key=idempotency_key, total=0)
                .returning(store_order.c.order_id))).scalar_one()
        except IntegrityError:
            await session.rollback()
            response.status_code = 201 if mode == "retry_201" else 200
            return await existing(session, idempotency_key)
        total = Decimal("0") if mode != "float_total" else 0.0
        try:
            for n, ln in enumerate(order.lines, 1):
                price = await session.scalar(select(Track.unit_price).where(Track.track_id == ln.track_id))
                if price is None:
                    raise HTTPException(404, "no such track")
                if mode == "stock_outside":
                    await session.execute(update(stock).where(stock.c.track_id == ln.track_id)
                                          .values(quantity=stock.c.quantity - ln.quantity))
                elif mode == "update_then_check":
                    # the stock taken first, then checked: the CHECK constraint refuses the write
                    await session.execute(update(stock).where(stock.c.track_id == ln.track_id)
                                          .values(quantity=stock.c.quantity - ln.quantity))
                    left = await session.scalar(select(stock.c.quantity)
                                                .where(stock.c.track_id == ln.track_id))
                    if left < 0:
                        raise HTTPException(409, "out of stock")
                elif mode == "python_check_locked":
                    have = await session.scalar(select(stock.c.quantity)
                                                .where(stock.c.track_id == ln.track_id)
                                                .with_for_update())
                    if have < ln.quantity:
                        raise HTTPException(409, "out of stock")
                    await session.execute(update(stock).where(stock.c.track_id == ln.track_id)
                                          .values(quantity=have - ln.quantity))
                else:
                    taken = await session.execute(
                        update(stock).where(stock.c.track_id == ln.track_id,
                                            stock.c.quantity >= ln.quantity)
                        .values(quantity=stock.c.quantity - ln.quantity))
                    if taken.rowcount != 1:
                        raise HTTPException(409, "out of stock")
                await session.execute(insert(store_order_line).values(
                    order_id=order_id, line_no=n, track_id=ln.track_id, quantity=ln.quantity,
                    unit_price=price))
                if mode == "float_total":
                    total += float(price) * ln.quantity
                else:
                    total += price * ln.quantity
        except HTTPException:
            await session.rollback()
            raise
        await session.execute(update(store_order).where(store_order.c.order_id == order_id)
                              .values(total=total))
        await session.commit()
        await asyncio.to_thread(send_receipt, order_id)
        if mode == "float_total":
            got = (await _orders(session, store_order.c.order_id == order_id))[0]
            return OrderOut(order_id=order_id, customer_id=order.customer_id, total=total,
                            lines=got.lines)
        return (await _orders(session, store_order.c.order_id == order_id))[0]

    @app.get("/orders/{order_id}")
    async def read_order(order_id: int, session: StoreSessionDep) -> OrderOut:
        found = await _orders(session, store_order.c.order_id == order_id)
        if not found:
            raise HTTPException(404, f"order {order_id} not found")
        return found[0]

    @app.get("/orders")
    async def list_orders(session: StoreSessionDep,
                          limit: Annotated[int, Query(ge=1)] = 20 if mode == "unbounded_limit" else 20,
                          offset: Offset = 0) -> list[OrderOut]:
        if mode != "unbounded_limit" and limit > 100:
            raise HTTPException(422, "limit")
        return await _orders(session, store_order.c.order_id.is_not(None), limit, offset)

    @app.get("/tracks")
    async def search_tracks(session: StoreSessionDep, q: str = "", limit: Page = 20,
                            offset: Offset = 0) -> list[TrackHit]:
        if mode == "search_no_autoescape":
            cond = Track.name.icontains(q)
        else:
            cond = Track.name.icontains(q, autoescape=True)
        if mode == "search_stock_per_row":
            tracks = (await session.execute(select(Track.track_id, Track.name, Track.unit_price)
                      .where(cond).order_by(Track.track_id).limit(limit).offset(offset))).all()
            return [TrackHit(track_id=t.track_id, name=t.name, unit_price=t.unit_price,
                             stock=await session.scalar(select(stock.c.quantity)
                                                        .where(stock.c.track_id == t.track_id)))
                    for t in tracks]
        rows = (await session.execute(
            select(Track.track_id, Track.name, Track.unit_price, stock.c.quantity.label("stock"))
            .join(stock, stock.c.track_id == Track.track_id)
            .where(cond).order_by(Track.track_id).limit(limit).offset(offset))).all()
        return [TrackHit(track_id=r.track_id, name=r.name, unit_price=r.unit_price, stock=r.stock)
                for r in rows]

    return app


def _make_app3(url, *, mode):
    app = _make_app2(url, mode="python_check_locked" if mode == "lines_by_track" else "plain")
    # replace POST /orders and (for lines_by_track) the readers
    app.router.routes = [r for r in app.router.routes
                         if not (getattr(r, "path", "") == "/orders" and "POST" in getattr(r, "methods", ()))
                         and not (mode == "lines_by_track" and getattr(r, "path", "").startswith("/orders"))]

    async def orders(session, where, limit=None, offset=0):
        got = await _orders(session, where, limit, offset)
        if mode == "lines_by_track":  # forgets line_no: lines by track id
            for o in got:
                o.lines.sort(key=lambda ln: ln.track_id)
        return got

    @app.post("/orders", status_code=201)
    async def create_order(order: OrderIn, response: Response, session: StoreSessionDep,
                           idempotency_key: Annotated[str, Header()]) -> OrderOut:
        try:
            try:
                order_id = (await session.execute(
                    insert(store_order).values(customer_id=order.customer_id,
                                               idempotency_key=idempotency_key, total=0)
                    .returning(store_order.c.order_id))).scalar_one()
            except IntegrityError:
                await session.rollback()
                response.status_code = 200
                return (await orders(session, store_order.c.idempotency_key == idempotency_key))[0]
            ids = sorted({ln.track_id for ln in order.lines})
            rows = (await session.execute(
                select(Track.track_id, Track.unit_price, stock.c.quantity)
                .join(stock, stock.c.track_id == Track.track_id)
                .where(Track.track_id.in_(ids)))).all()
            info = {r.track_id: r for r in rows}
            total = Decimal("0")
            for n, ln in enumerate(order.lines, 1):
                if ln.track_id not in info:
                    raise HTTPException(404, "no such track")
                if mode == "stock_prefetch":
                    # compares each line with the stock read once: two lines of one track
                    # are each checked against the whole stock
                    if info[ln.track_id].quantity < ln.quantity:
                        raise HTTPException(409, "out of stock")
                    await session.execute(update(stock).where(stock.c.track_id == ln.track_id)
                                          .values(quantity=stock.c.quantity - ln.quantity))
                else:
                    taken = await session.execute(
                        update(stock).where(stock.c.track_id == ln.track_id,
                                            stock.c.quantity >= ln.quantity)
                        .values(quantity=stock.c.quantity - ln.quantity))
                    if taken.rowcount != 1:
                        raise HTTPException(409, "out of stock")
                price = info[ln.track_id].unit_price
                await session.execute(insert(store_order_line).values(
                    order_id=order_id, line_no=n, track_id=ln.track_id, quantity=ln.quantity,
                    unit_price=price))
                total += price * ln.quantity
            await session.execute(update(store_order).where(store_order.c.order_id == order_id)
                                  .values(total=total))
        except HTTPException:
            await session.rollback()
            raise
        finally:
            if mode == "commit_in_finally":
                await session.commit()  # 'always commit': also on cancellation
        await session.commit()
        await asyncio.to_thread(send_receipt, order_id)
        return (await orders(session, store_order.c.order_id == order_id))[0]

    if mode == "lines_by_track":
        @app.get("/orders/{order_id}")
        async def read_order(order_id: int, session: StoreSessionDep) -> OrderOut:
            found = await orders(session, store_order.c.order_id == order_id)
            if not found:
                raise HTTPException(404, f"order {order_id} not found")
            return found[0]

        @app.get("/orders")
        async def list_orders(session: StoreSessionDep, limit: Page = 20, offset: Offset = 0) -> list[OrderOut]:
            return await orders(session, store_order.c.order_id.is_not(None), limit, offset)
    return app


@wrong("q4", expect="the stock_not_negative constraint")
def w_q4_stock_checked_outside_transaction(url):
    """The stock checked in its own committed transaction, then taken unconditionally: five
    orders at once for the last copies all pass the check, and the CHECK constraint fails."""
    return _make_app2(url, mode="stock_outside")


@wrong("q4", expect="took the stock before checking it")
def w_q4_update_then_check(url):
    """Each line's stock taken with an unconditional UPDATE, then read back and checked: a
    sold-out line drives the stock below 0 and the CHECK constraint fails (a 500)."""
    return _make_app2(url, mode="update_then_check")


@wrong("q4", expect="Floats cannot hold most cents exactly")
def w_q4_float_total(url):
    """The total added up with float(): 2 x 0.99 + 1 x 0.99 -> 2.9699999999999998."""
    return _make_app2(url, mode="float_total")


@wrong("q4", expect="give the lines back in the order given")
def w_q4_lines_by_track(url):
    """The lines read back sorted by track_id, not by line_no."""
    return _make_app3(url, mode="lines_by_track")


@wrong("q4", expect="the second one overdrew it")
def w_q4_stock_prefetch(url):
    """Each line compared with the stock read once: 3 + 3 copies of one track on a stock of 4
    pass both checks, and the CHECK constraint fails (a 500)."""
    return _make_app3(url, mode="stock_prefetch")


@wrong("q4", expect="Bind q as a parameter, never an f-string")
def w_q4_fstring_search(url):
    """The search SQL built with an f-string: the quote in "O'Brien" breaks the statement."""
    return _make_app(url, fstring_search=True)


# --- differently-correct answers, from the independent audit (answers3/a11.py) ---
# q4's reuse the helpers above (_make_app, _make_app2, _make_app3), each as the audit wrote it.


@correct("q1")
async def rolled_back_session_reference_shape(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """the lesson's pattern (connection, outer begin, create_savepoint, rollback in finally)."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint",
                               expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@correct("q1")
async def rolled_back_session_explicit_close(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """no context managers; a sessionmaker bound to the connection, explicit close of
    session, rollback of the outer transaction and close of the connection, in finally."""
    conn = await engine.connect()
    outer = await conn.begin()
    maker = async_sessionmaker(bind=conn, join_transaction_mode="create_savepoint")
    session = maker()
    try:
        yield session
    finally:
        await session.close()
        if outer.is_active:
            await outer.rollback()
        await conn.close()


@wrong("q2", expect="empties the whole dict")
async def client_with_session_clears_all(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    # clear() in finally also removes the override the app had before the test
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.clear()


@correct("q2")
async def client_with_session_restoring_previous(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """override with a plain (non-generator) function; restore exactly what was there
    (pop or put back the previous override) rather than clear()."""
    before = app.dependency_overrides.get(get_session)
    app.dependency_overrides[get_session] = lambda: session
    try:
        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app),
                                         base_url="http://store") as client:
                yield client
    finally:
        if before is None:
            app.dependency_overrides.pop(get_session, None)
        else:
            app.dependency_overrides[get_session] = before


@correct("q4")
def store_insert_first(url: str) -> FastAPI:
    """INSERT the order first (the unique key judges retries; IntegrityError -> 200
    with the first order), stock taken with a conditional UPDATE (rowcount), one transaction,
    send_receipt in a thread, pages in 2 statements, search with icontains(autoescape)."""
    return _make_app(url)


@correct("q4")
def store_select_then_insert_with_fallback(url: str) -> FastAPI:
    """looks the key up first (fast path), but still lets the unique constraint judge
    a race (IntegrityError -> rollback -> answer 200 with the winner's order)."""
    return _make_app(url, idem="select_first")


@correct("q4")
def store_python_check_after_write_lock(url: str) -> FastAPI:
    """inserts the order first (on SQLite the transaction now holds the write lock),
    then reads each stock WITH FOR UPDATE (PostgreSQL row lock), compares in Python and writes
    the new value, all in the one transaction; a price looked up per line (n lines -> fine)."""
    return _make_app2(url, mode="python_check_locked")


@correct("q1")
async def rolled_back_session_no_try_finally(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """no try/finally around the yield. pytest resumes a fixture's
    generator with next() after the test, even when the test failed (it never throws the
    test's exception into the fixture), so the rollback still runs. Acceptable either way; a
    check that throws into the generator would (defensibly) reject it with a clear message."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        yield session
        await session.close()
        await transaction.rollback()


@correct("q4")
def store_one_join_for_prices(url: str) -> FastAPI:
    """prices and existence in one joined SELECT, stock taken by conditional UPDATEs."""
    return _make_app3(url, mode="plain")


@correct("q4")
def store_commit_in_finally(url: str) -> FastAPI:
    """A commit in `finally` looks as if a cancelled request would commit its half-written
    order, but on this stack a CancelledError during an awaited driver call invalidates the
    connection, so that commit raises PendingRollbackError and nothing is committed (poor
    style, no observable defect)."""
    return _make_app3(url, mode="commit_in_finally")


@correct("q4")
def store_session_begin_block(url: str) -> FastAPI:
    """`async with session.begin():` around the whole order (it rolls back on any
    exception, HTTPException included); an IntegrityError from the unique key is caught
    outside the block and answered 200 with the first order."""
    app = _make_app2(url, mode="plain")
    app.router.routes = [r for r in app.router.routes
                         if not (getattr(r, "path", "") == "/orders" and "POST" in getattr(r, "methods", ()))]

    @app.post("/orders", status_code=201)
    async def create_order(order: OrderIn, response: Response, session: StoreSessionDep,
                           idempotency_key: Annotated[str, Header()]) -> OrderOut:
        try:
            async with session.begin():
                order_id = (await session.execute(
                    insert(store_order).values(customer_id=order.customer_id,
                                               idempotency_key=idempotency_key, total=0)
                    .returning(store_order.c.order_id))).scalar_one()
                total = await _place_lines(session, order_id, order.lines)
                await session.execute(update(store_order)
                                      .where(store_order.c.order_id == order_id).values(total=total))
        except IntegrityError:
            response.status_code = 200
            return (await _orders(session, store_order.c.idempotency_key == idempotency_key))[0]
        await asyncio.to_thread(send_receipt, order_id)
        return (await _orders(session, store_order.c.order_id == order_id))[0]

    return app


@correct("q4")
def store_receipt_in_executor(url: str) -> FastAPI:
    """send_receipt awaited through loop.run_in_executor(None, ...) instead of to_thread."""
    return _make_app(url, receipt="executor")


@correct("q4")
def store_search_q_required(url: str) -> FastAPI:
    """`q` is a required query parameter (the statement
    writes `GET /tracks?q=&limit=&offset=`, q always present, possibly empty). A check that calls
    /tracks without q would get 422; acceptable either way if the check always sends q."""
    app = _make_app(url)
    search = next(r for r in app.router.routes if getattr(r, "path", "") == "/tracks")
    inner = search.endpoint

    async def search_required(session: StoreSessionDep, q: str, limit: Page = 20,
                              offset: Offset = 0) -> list[TrackHit]:
        return await inner(session=session, q=q, limit=limit, offset=offset)

    app.router.routes.remove(search)
    app.get("/tracks")(search_required)
    return app



@correct("q4")
def store_reference(url: str) -> FastAPI:
    """The solution's design: the key claimed by the order's INSERT before any stock is taken."""
    return _store(url, "none")


@correct("q2")
async def client_with_session_pops_its_key(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """override get_session, LifespanManager, and pop only that key in finally."""
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)


@correct("q2")
async def client_with_session_restores_a_copy(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """a copy of the overrides saved before, put back as a whole afterwards."""
    saved = app.dependency_overrides.copy()
    app.dependency_overrides[get_session] = lambda: session
    try:
        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app),
                                         base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides = saved


@wrong("q2", expect="which the app did not have before")
async def client_with_session_leaves_a_stray_override(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    # a second override, for the session's factory, is never taken back
    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    app.dependency_overrides[AsyncSession] = lambda: session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)


@wrong("q2", expect="new session on the test's connection")
async def client_with_session_new_session_per_request(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    # each request opens its own session on the test's connection (default join mode): the
    # 409's rollback then rolls back the test's outer transaction, earlier rows and all
    maker = async_sessionmaker(session.bind, expire_on_commit=False)

    async def a_session_per_request():
        async with maker() as own:
            yield own

    app.dependency_overrides[get_session] = a_session_per_request
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)


@wrong("q2", expect="was a new dict")
async def client_with_session_replaces_the_dict(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    # a new dict instead of one key: the app's own override is gone from the start
    app.dependency_overrides = {get_session: lambda: session}
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)


@correct("q2")
async def client_with_session_closing_it_after_each_request(
        app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """the override hands over the test's session and closes it after each request: with
    create_savepoint the session simply begins again on its next use."""
    async def the_test_session():
        async with session:
            yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)
