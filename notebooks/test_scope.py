import pytest
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture  # function scope: a new loop for every test
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_engine(database_url):
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.mark.anyio
async def test_uses_the_shared_engine(shared_engine):
    assert shared_engine is not None
