import os
import shutil

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from course.apps.music_store import get_session
from course.apps.capstone_tools import store_variant, take_over_begin

# the lesson-09 store; STORE_BUG names a copy with a planted bug (the last section uses it)
create_app = store_variant(os.environ.get("STORE_BUG") or "reference")


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    copy = tmp_path_factory.mktemp("db") / "chinook.db"
    shutil.copyfile(os.environ["CHINOOK"], copy)
    return f"sqlite+aiosqlite:///{copy}"


@pytest.fixture
async def engine(database_url):
    engine = take_over_begin(create_async_engine(database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine):
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint",
                               expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture
async def client(database_url, session):
    app = create_app(database_url)

    async def the_test_session():
        yield session

    app.dependency_overrides[get_session] = the_test_session
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://store") as client:
                yield client
    finally:
        app.dependency_overrides.pop(get_session, None)  # only ours: others may have their own
