import pytest
from sqlalchemy import select

from course.models import Artist

pytestmark = pytest.mark.anyio


async def test_create_then_repeat_is_409(client, session):
    created = await client.post("/artists", json={"name": "Fixture Band"})
    assert created.status_code == 201
    assert (await client.post("/artists", json={"name": "FIXTURE BAND"})).status_code == 409
    # the 409's rollback ended a SAVEPOINT only: the test still sees its artist
    assert await session.scalar(select(Artist.name).where(Artist.name == "Fixture Band"))


async def test_nothing_left_from_other_tests(session):
    assert await session.scalar(select(Artist.name).where(Artist.name == "Fixture Band")) is None


async def test_missing_artist_is_404(client):
    assert (await client.get("/artists/999999")).status_code == 404
