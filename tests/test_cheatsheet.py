"""Every call CHEATSHEET.md shows runs, on the pinned versions, as the sheet says it does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from decimal import Decimal

import aiosqlite
import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import course
from course.models import Album, Track
from course.paths import ROOT

SHEET = (ROOT / "CHEATSHEET.md").read_text()


@pytest.mark.parametrize("name", ["CHEATSHEET.md", "GLOSSARY.md"])
def test_links_reach_files_that_exist(name: str) -> None:
    import re

    for target in re.findall(r"\]\(([^)#]+)", (ROOT / name).read_text()):
        if target.startswith("http"):
            continue
        assert (ROOT / target).exists(), target


def test_aiosqlite_column() -> None:
    async def main() -> None:
        path = course.fresh_sqlite("test-cheatsheet")
        async with aiosqlite.connect(path) as db:
            await db.execute("PRAGMA foreign_keys = ON")
            assert await db.execute_fetchall("SELECT name FROM artist WHERE artist_id = ?", (22,)) == [("Led Zeppelin",)]
            assert await db.execute_fetchall("SELECT name FROM artist WHERE artist_id = :id", {"id": 22}) == [("Led Zeppelin",)]
            row = await (await db.execute("SELECT name FROM artist WHERE artist_id = ?", (22,))).fetchone()
            assert row[0] == "Led Zeppelin"
            assert await (await db.execute("SELECT name FROM artist WHERE artist_id = ?", (0,))).fetchone() is None
            async with db.execute("SELECT name FROM genre ORDER BY genre_id") as cursor:
                names = [name async for (name,) in cursor]
            assert len(names) == 25
            ids = [1, 22, 50]
            rows = await db.execute_fetchall(
                "SELECT artist_id FROM artist WHERE artist_id IN (SELECT value FROM json_each(?)) ORDER BY artist_id",
                (json.dumps(ids),))
            assert [r[0] for r in rows] == ids
            cursor = await db.execute("INSERT INTO genre (name) VALUES (?)", ("Chiptune",))
            assert cursor.lastrowid == 26 and db.in_transaction
            await db.executemany("INSERT INTO genre (name) VALUES (?)", [("A",), ("B",)])
            await db.rollback()
            await db.execute("UPDATE genre SET name = ? WHERE genre_id = ?", ("Rock", 1))
            await db.commit()
            db.row_factory = aiosqlite.Row
            row = await (await db.execute("SELECT artist_id, name FROM artist WHERE artist_id = ?", (22,))).fetchone()
            assert dict(row) == {"artist_id": 22, "name": "Led Zeppelin"}
            with pytest.raises(sqlite3.IntegrityError):
                await db.execute("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)", (1, 999_999))
            await db.rollback()
        db = await aiosqlite.connect(path)
        await db.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def postgres_db():
    return asyncio.run(course.fresh_postgres("test_cheatsheet"))


def test_asyncpg_column(postgres_db) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(postgres_db.dsn)
        try:
            assert await conn.execute("UPDATE track SET unit_price = unit_price WHERE album_id = $1", 1) == "UPDATE 10"
            rows = await conn.fetch("SELECT name FROM artist WHERE artist_id = $1", 22)
            assert isinstance(rows[0], asyncpg.Record) and dict(rows[0]) == {"name": "Led Zeppelin"}
            assert await conn.fetchrow("SELECT name FROM artist WHERE artist_id = $1", 0) is None
            assert await conn.fetchval("SELECT name FROM artist WHERE artist_id = $1", 22) == "Led Zeppelin"
            rows = await conn.fetch("SELECT artist_id FROM artist WHERE artist_id = any($1::int[]) ORDER BY 1", [1, 22])
            assert [r["artist_id"] for r in rows] == [1, 22]
            async with conn.transaction():
                names = [r["name"] async for r in conn.cursor("SELECT name FROM genre ORDER BY genre_id")]
            assert len(names) == 25
            async with conn.transaction():
                new_id = await conn.fetchval(
                    "INSERT INTO genre (genre_id, name) VALUES ($1, $2) RETURNING genre_id", 100, "Chiptune")
                assert new_id == 100
                with contextlib.suppress(asyncpg.UniqueViolationError):
                    async with conn.transaction():  # a savepoint
                        await conn.execute("INSERT INTO genre (genre_id, name) VALUES ($1, $2)", 100, "again")
                await conn.executemany("INSERT INTO genre (genre_id, name) VALUES ($1, $2)", [(101, "A"), (102, "B")])
                await conn.execute("CREATE TEMP TABLE t (n int, label text)")
                assert await conn.copy_records_to_table("t", records=[(1, "a"), (2, "b")]) == "COPY 2"
                assert await conn.fetchval("SELECT count(*) FROM genre WHERE genre_id >= $1", 100) == 3
        finally:
            await conn.close()
        assert conn.is_closed()
        async with asyncpg.create_pool(postgres_db.dsn, min_size=1, max_size=10) as pool:
            async with pool.acquire() as pooled:
                assert await pooled.fetchval("SELECT 1") == 1
            assert await pool.fetchval("SELECT count(*) FROM genre WHERE genre_id >= $1", 100) == 3

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sqlalchemy_column(backend: str) -> None:
    async def main() -> None:
        engine = create_async_engine(await course.fresh_engine_url(f"test_cheatsheet_sa_{backend}", backend))
        try:
            assert (engine.pool.size(), engine.pool._max_overflow) == (5, 10)  # the defaults the sheet quotes
            async with engine.connect() as conn:
                result = await conn.execute(text("SELECT artist_id, name FROM artist WHERE artist_id = :id"), {"id": 22})
                assert result.all() == [(22, "Led Zeppelin")]
                result = await conn.execute(text("SELECT name FROM artist WHERE artist_id = :id"), {"id": 0})
                assert result.first() is None
                assert await conn.scalar(text("SELECT name FROM artist WHERE artist_id = :id"), {"id": 22}) == "Led Zeppelin"
                one = (await conn.execute(text("SELECT artist_id, name FROM artist WHERE artist_id = :id"), {"id": 22})).one()
                assert one._asdict() == {"artist_id": 22, "name": "Led Zeppelin"}
                maps = (await conn.execute(text("SELECT artist_id FROM artist WHERE artist_id = :id"), {"id": 22})).mappings().all()
                assert maps == [{"artist_id": 22}]
                stmt = select(Track.track_id).where(Track.track_id.in_([1, 2, 9])).order_by(Track.track_id)
                assert (await conn.execute(stmt)).scalars().all() == [1, 2, 9]
                streamed = [row.name async for row in await conn.stream(select(Track.name).where(Track.album_id == 1))]
                assert len(streamed) == 10
                new_id = (await conn.execute(text("INSERT INTO genre (name) VALUES (:name) RETURNING genre_id"),
                                             {"name": "Chiptune"})).scalar_one()
                assert new_id == 26
                await conn.execute(text("INSERT INTO genre (name) VALUES (:name)"), [{"name": "A"}, {"name": "B"}])
                async with conn.begin_nested():  # a savepoint inside the connection's transaction
                    await conn.execute(text("INSERT INTO genre (name) VALUES (:name)"), {"name": "C"})
                await conn.commit()
            async with engine.begin() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM genre")) == 29
            Session = async_sessionmaker(engine, expire_on_commit=False)
            async with Session() as session, session.begin():
                track = await session.get(Track, 1)
                assert track.unit_price == Decimal("0.99")
                tracks = (await session.scalars(select(Track).where(Track.album_id == 1))).all()
                assert len(tracks) == 10
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_asyncio_column() -> None:
    async def f(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise LookupError(x)
        return x

    async def main() -> None:
        assert await asyncio.gather(f(1), f(2)) == [1, 2]
        results = await asyncio.gather(f(1), f(-1), return_exceptions=True)
        assert results[0] == 1 and isinstance(results[1], BaseException)
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(f(3))
        assert t.result() == 3
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(f(-1))
        task = asyncio.create_task(f(4))
        assert await task == 4
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01) as cm:
                await asyncio.sleep(1)
        assert cm.expired()

        async def gives_up() -> None:
            raise TimeoutError("the work's own")

        with pytest.raises(TimeoutError, match="the work's own"):
            async with asyncio.timeout(5) as cm:
                await gives_up()
        assert not cm.expired()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(1), 0.01)
        task = asyncio.create_task(asyncio.sleep(1))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        sem = asyncio.Semaphore(2)
        async with sem:
            pass
        assert await asyncio.to_thread(abs, -5) == 5
        assert await asyncio.to_thread(asyncio.run, f(6)) == 6

    asyncio.run(main())
    with asyncio.Runner() as runner:
        assert runner.run(f(1)) == 1
        assert runner.run(f(2)) == 2


def test_session_loading_options_named_in_the_sheet() -> None:
    from sqlalchemy.orm import selectinload

    assert "selectinload" in SHEET
    select(Album).options(selectinload(Album.tracks))  # builds without error


def test_sqlalchemy_fastapi_and_performance_rows() -> None:
    """The calls of the sheet's lessons 06-10 table, on SQLite."""
    import anyio.to_thread
    import httpx
    from asgi_lifespan import LifespanManager
    from fastapi import FastAPI
    from sqlalchemy import insert
    from sqlalchemy.orm import joinedload, raiseload, selectinload

    from course.models import Artist
    from course.probes import StatementCounter

    async def main() -> None:
        assert anyio.to_thread.current_default_thread_limiter().total_tokens == 40
        url = await course.fresh_engine_url("test-cheatsheet-sa", "sqlite")
        assert url.drivername == "sqlite+aiosqlite"
        engine = create_async_engine(url)
        Session = async_sessionmaker(engine, expire_on_commit=False)
        async with engine.connect() as conn:
            result = await conn.stream(select(Track.track_id).order_by(Track.track_id))
            sizes = [len(rows) async for rows in result.partitions(1000)]
            assert sizes == [1000, 1000, 1000, 503]
        async with engine.begin() as conn:
            await conn.execute(insert(Artist.__table__), [{"name": "A"}, {"name": "B"}])
        async with Session.begin() as session:
            artist = Artist(name="C")
            session.add(artist)
            await session.flush()
            assert artist.artist_id is not None
        async with Session() as session:
            assert await session.get(Track, 10**6) is None
            with StatementCounter(engine) as counter:
                album = (await session.scalars(
                    select(Album).options(selectinload(Album.tracks)).where(Album.album_id == 1))).one()
            assert counter.count == 2 and len(album.tracks) == 10
            track = (await session.scalars(select(Track).options(joinedload(Track.album)).limit(1))).one()
            assert track.album is not None
            rows = (await session.scalars(select(Album).options(joinedload(Album.tracks)).limit(2))).unique().all()
            assert len(rows) == 2
        async with Session() as session:  # a new identity map: nothing loaded yet
            bare = (await session.scalars(select(Album).options(raiseload("*")).where(Album.album_id == 2))).one()
            with pytest.raises(Exception, match="lazy='raise'"):
                bare.tracks  # noqa: B018
        async with Session() as session:
            album = await session.get(Album, 1)
            assert len(await album.awaitable_attrs.tracks) == 10

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI):
            yield {"sessionmaker": Session}

        app = FastAPI(lifespan=lifespan)

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {"ok": "yes"}

        async with LifespanManager(app) as manager, httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client:
            assert (await client.get("/ping")).json() == {"ok": "yes"}
        await engine.dispose()

    asyncio.run(main())


def test_testing_rows_of_lesson_11() -> None:
    """A test's writes rolled back on PostgreSQL, and a dependency override by a plain lambda."""
    import httpx
    from fastapi import Depends, FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession

    from course.models import Artist

    async def main() -> None:
        engine = create_async_engine(await course.fresh_engine_url("test_cheatsheet_11", "postgresql"))
        async with engine.connect() as conn:
            outer = await conn.begin()
            session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
            session.add(Artist(name="Only in this test"))
            await session.commit()  # a savepoint's release, not a real commit
            assert await session.scalar(select(Artist.name).where(Artist.name == "Only in this test"))

            def get_session() -> AsyncSession:
                raise AssertionError("the override replaces it")

            app = FastAPI()

            @app.get("/count")
            async def count(s: AsyncSession = Depends(get_session)) -> int:  # noqa: B008
                return len((await s.scalars(select(Artist.artist_id))).all())

            app.dependency_overrides[get_session] = lambda: session
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                    assert (await client.get("/count")).json() == 276
            finally:
                app.dependency_overrides.clear()
            await session.close()
            await outer.rollback()
        async with engine.connect() as conn:
            assert await conn.scalar(select(Artist.artist_id).where(Artist.name == "Only in this test")) is None
        await engine.dispose()

    asyncio.run(main())


def test_concurrent_change_and_keyset_rows() -> None:
    """Lessons 07-08 rows: an atomic add, a locked read, a conditional UPDATE, a keyset page."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, tuple_, update

    from course.models import Invoice

    async def main() -> None:
        engine = create_async_engine(await course.fresh_engine_url("test-cheatsheet-rows", "postgresql"))
        Session = async_sessionmaker(engine, expire_on_commit=False)
        async with Session.begin() as session:
            before = await session.scalar(select(Invoice.total).where(Invoice.invoice_id == 1))
            await session.execute(update(Invoice).where(Invoice.invoice_id == 1)
                                  .values(total=Invoice.total + Decimal("1.00")))
            locked = (await session.scalars(select(Invoice).where(Invoice.invoice_id == 1)
                                            .with_for_update())).one()
            assert locked.total == before + Decimal("1.00")
        stock = Table("stock", MetaData(), Column("item", String(40), primary_key=True),
                      Column("quantity", Integer, nullable=False))
        async with engine.begin() as conn:
            await conn.run_sync(stock.metadata.create_all)
            await conn.execute(stock.insert().values(item="poster", quantity=1))
            taken = [(await conn.execute(update(stock).where(stock.c.item == "poster", stock.c.quantity >= 1)
                                         .values(quantity=stock.c.quantity - 1))).rowcount for _ in range(2)]
            assert taken == [1, 0]
        async with Session() as session:
            key = (Track.name, Track.track_id)
            first = (await session.execute(select(*key).order_by(*key).limit(3))).all()
            last = tuple(first[-1])
            page = (await session.execute(select(*key).where(tuple_(*key) > tuple_(*last))
                                          .order_by(*key).limit(3))).all()
            everything = (await session.execute(select(*key).order_by(*key).limit(6))).all()
            assert first + page == everything
        await engine.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_core_table_rows_and_upsert(backend: str) -> None:
    """Lessons 06-07 rows: a table's columns, compiled SQL, update/delete with rowcount, a count, an upsert."""
    from sqlalchemy import MetaData, delete, func, update
    from sqlalchemy.dialects import postgresql, sqlite

    from course.models import Genre

    async def main() -> None:
        url = await course.fresh_engine_url(f"test-cheatsheet-core-{backend}", backend)
        engine = create_async_engine(url)
        try:
            metadata = MetaData()
            async with engine.connect() as conn:
                await conn.run_sync(metadata.reflect)
            genre = metadata.tables["genre"]
            assert genre.c.keys() == ["genre_id", "name"]
            shown = str(select(genre.c.name).where(genre.c.genre_id == 7).compile(dialect=engine.dialect))
            assert ("$1" if backend == "postgresql" else "?") in shown and "7" not in shown  # bound apart
            async with engine.begin() as conn:
                renamed = await conn.execute(update(genre).where(genre.c.genre_id == 1).values(name="Rock!"))
                assert renamed.rowcount == 1
                assert await conn.scalar(select(func.count()).where(genre.c.name == "Rock!")) == 1
                assert await conn.scalar(select(func.count()).select_from(genre)) == 25
                deleted = await conn.execute(delete(genre).where(genre.c.genre_id == 999))
                assert deleted.rowcount == 0
                rows = [{"genre_id": 1, "name": "Rock & Roll"}, {"genre_id": 26, "name": "Chiptune"}]
                stmt = (postgresql.insert if backend == "postgresql" else sqlite.insert)(Genre).values(rows)
                stmt = stmt.on_conflict_do_update(index_elements=[Genre.genre_id], set_={"name": stmt.excluded.name})
                await conn.execute(stmt)
                names = (await conn.execute(select(genre.c.name).where(genre.c.genre_id.in_([1, 26]))
                                            .order_by(genre.c.genre_id))).scalars().all()
                assert names == ["Rock & Roll", "Chiptune"]
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_rows_httpx_and_rounding() -> None:
    """The 06-10 rows that need no database: a Row's `_mapping`, httpx's params= and headers=,
    and rounding up on integers."""
    import math

    import httpx

    async def main() -> dict:
        engine = create_async_engine("sqlite+aiosqlite://")
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(text("SELECT 22 AS artist_id, 'Led Zeppelin' AS name"))).one()
                return dict(row._mapping)
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == {"artist_id": 22, "name": "Led Zeppelin"}
    request = httpx.Request("GET", "http://test/tracks", params={"q": "O'Brien", "limit": 3},
                            headers={"Idempotency-Key": "k1"})
    assert request.url.query == b"q=O%27Brien&limit=3" and request.headers["Idempotency-Key"] == "k1"
    assert math.ceil(100 * (70 / 1000)) == 8 and -(-100 * 70 // 1000) == 7
