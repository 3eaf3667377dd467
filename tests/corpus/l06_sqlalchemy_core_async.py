"""Wrong answers to exercises/06-sqlalchemy-core-async-workbook.ipynb.

The workbook reflects Chinook's tables once; the answers here use the same Table objects, taken
from the course's models (the same tables on both backends)."""

import asyncio
import csv
import sqlite3

from sqlalchemy import create_engine, desc, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from course.models import Album, Artist, Base, Genre, Track
from tests.corpus import correct, wrong

track, genre = Base.metadata.tables["track"], Base.metadata.tables["genre"]
album, artist = Base.metadata.tables["album"], Base.metadata.tables["artist"]
playlist, playlist_track = Base.metadata.tables["playlist"], Base.metadata.tables["playlist_track"]


def _longest(name, n):
    return (select(track.c.name, track.c.milliseconds)
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name == name))


# --- q1: longest_tracks ----------------------------------------------------------------------

@wrong("q1", expect="inside your SQL text")
async def longest_tracks_fstring_in_text(conn, name, n):
    sql = text(
        "SELECT t.name, t.milliseconds FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id "
        f"WHERE g.name = '{name}' ORDER BY t.milliseconds DESC, t.name, t.track_id LIMIT :n"  # the bug on show
    )
    return (await conn.execute(sql, {"n": n})).all()


@wrong("q1", expect="ties are broken another way")
async def longest_tracks_ties_by_id(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.track_id).limit(n)
    return (await conn.execute(stmt)).all()


@wrong("q1", expect="every n makes a new statement")
async def longest_tracks_fstring_limit(conn, name, n):
    sql = text(
        "SELECT t.name, t.milliseconds FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id "
        f"WHERE g.name = :name ORDER BY t.milliseconds DESC, t.name, t.track_id LIMIT {int(n)}"  # the bug on show
    )
    return (await conn.execute(sql, {"name": name})).all()


@wrong("q1", expect="cut it in Python")
async def longest_tracks_sliced_in_python(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id)
    return (await conn.execute(stmt)).all()[:n]


@wrong("q1", expect="expected 3")
async def longest_tracks_off_by_one(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id)
    return (await conn.execute(stmt.limit(n + 1))).all()


@wrong("q1", expect="forget `await`")
async def longest_tracks_without_await(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id)
    return conn.execute(stmt.limit(n))


@wrong("q1", expect="wrong order")
async def longest_tracks_shortest_first(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)
    return sorted((await conn.execute(stmt)).all(), key=lambda row: row[1])


@wrong("q1", expect="never closed")
async def longest_tracks_leaks_a_connection(conn, name, n):
    extra = await conn.engine.connect()  # BUG: a second connection, never closed
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)
    return (await extra.execute(stmt)).all()


@wrong("q1", expect="sync sqlite3 connection")
async def longest_tracks_sync_engine(conn, name, n):
    sync = create_engine(conn.engine.url.set(drivername="sqlite"))  # BUG: a sync driver
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)
    try:
        with sync.connect() as c:
            return c.execute(stmt).all()
    finally:
        sync.dispose()


@wrong("q1", expect="should start with")
async def longest_tracks_hard_coded_jazz(conn, name, n):
    # right only for the first thing one tries: the genre is ignored
    stmt = _longest("Jazz", n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)
    return (await conn.execute(stmt)).all()


# --- q2: create_playlist -----------------------------------------------------------------------

def _new_playlist(name):
    return insert(playlist).values(name=name).returning(playlist.c.playlist_id)


def _track_rows(playlist_id, track_ids):
    return [{"playlist_id": playlist_id, "track_id": t} for t in track_ids]


@wrong("q2", expect="never committed")
async def create_playlist_without_commit(engine, name, track_ids):
    async with engine.connect() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="when the second track 5 was refused")
async def create_playlist_commits_too_early(engine, name, track_ids):
    async with engine.connect() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
        await conn.commit()  # BUG: the playlist is committed before its tracks
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
        await conn.commit()
    return playlist_id


@wrong("q2", expect="when the list of tracks broke midway")
async def create_playlist_rolls_back_database_errors_only(engine, name, track_ids):
    async with engine.connect() as conn:
        try:
            playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
            for track_id in track_ids:
                await conn.execute(insert(playlist_track), _track_rows(playlist_id, [track_id]))
        except DBAPIError:
            await conn.rollback()
            raise
        finally:
            await conn.commit()  # BUG: commits whatever went in before any other failure
    return playlist_id


@wrong("q2", expect="when the check cancelled create_playlist midway")
async def create_playlist_commits_in_finally(engine, name, track_ids):
    async with engine.connect() as conn:
        try:
            playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
            if track_ids:
                await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
        except Exception:
            await conn.rollback()
            raise
        finally:
            if conn.in_transaction():
                await conn.commit()  # BUG: a cancellation is not an Exception, so this commits it
    return playlist_id


@wrong("q2", expect="a cancellation must reach the caller")
async def create_playlist_swallows_cancellation(engine, name, track_ids):
    try:
        async with engine.begin() as conn:
            playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
            if track_ids:
                await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
        return playlist_id
    except asyncio.CancelledError:
        return -1  # BUG: the caller asked to stop, and hears "done"


@wrong("q2", expect="let the database error reach the caller")
async def create_playlist_swallows_errors(engine, name, track_ids):
    try:
        async with engine.begin() as conn:
            playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
            if track_ids:
                await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
        return playlist_id
    except Exception:
        return -1


@wrong("q2", expect="INSERT ... DEFAULT VALUES")
async def create_playlist_inserts_empty_list(engine, name, track_ids):
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
        await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="stored as '1'")
async def create_playlist_fstring_in_text(engine, name, track_ids):
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(text(
            f"INSERT INTO playlist (name) VALUES ('{name}') RETURNING playlist_id"  # the bug on show
        ))).scalar_one()
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="never awaited")
async def create_playlist_forgets_await(engine, name, track_ids):
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
        if track_ids:
            conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="never closed")
async def create_playlist_leaks_its_connection(engine, name, track_ids):
    conn = await engine.connect()  # BUG: never closed
    playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
    if track_ids:
        await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    await conn.commit()
    return playlist_id


# --- q3: export_lines ------------------------------------------------------------------------

@wrong("q3", expect="fetched every row at once")
async def export_lines_fetch_all(conn, table, out):
    rows = (await conn.execute(select(table).order_by(table.c.invoice_line_id))).all()
    csv.writer(out).writerows(rows)
    return len(rows)


@wrong("q3", expect="memory grew with the table")
async def export_lines_streams_then_keeps_everything(conn, table, out):
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    rows = await result.all()  # BUG: streamed, then every row kept anyway
    csv.writer(out).writerows(rows)
    return len(rows)


@wrong("q3", expect="invoice_line_id order")
async def export_lines_unordered(conn, table, out):
    result = await conn.stream(select(table))
    count = 0
    writer = csv.writer(out)
    async for part in result.partitions(1000):
        writer.writerows(part)
        count += len(part)
    return count


@wrong("q3", expect="forget `await`")
async def export_lines_forgets_await(conn, table, out):
    result = conn.stream(select(table).order_by(table.c.invoice_line_id))
    count = 0
    async for part in result.partitions(1000):
        csv.writer(out).writerows(part)
        count += len(part)
    return count


@wrong("q3", expect="lines were written")
async def export_lines_with_header(conn, table, out):
    writer = csv.writer(out)
    writer.writerow(table.c.keys())
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    count = 0
    async for part in result.partitions(1000):
        writer.writerows(part)
        count += len(part)
    return count


@wrong("q3", expect="expected the number of rows written, 0")
async def export_lines_counts_for_the_first_table_only(conn, table, out):
    writer = csv.writer(out)
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for part in result.partitions(1000):
        writer.writerows(part)
    return 5_000  # right only for one table the check tries


@wrong("q3", expect="sync sqlite3 connection")
async def export_lines_with_sqlite3(conn, table, out):
    writer = csv.writer(out)
    with sqlite3.connect(conn.engine.url.database) as db:  # BUG: a blocking driver in async code
        count = 0
        for row in db.execute(f"SELECT * FROM {table.name} ORDER BY invoice_line_id"):  # table name, not input
            writer.writerow(row)
            count += 1
    return count


@wrong("q3", expect="never closed")
async def export_lines_on_a_second_connection(conn, table, out):
    other = await conn.engine.connect()  # BUG: never closed
    result = await other.stream(select(table).order_by(table.c.invoice_line_id))
    writer = csv.writer(out)
    count = 0
    async for part in result.partitions(1000):
        writer.writerows(part)
        count += len(part)
    return count


# --- q4: load_lines ----------------------------------------------------------------------------

def _dicts(table, lines):
    return [dict(zip(table.c.keys(), line, strict=True)) for line in lines]


@wrong("q4", expect="INSERT statements for 1500 rows")
async def load_lines_one_by_one(engine, table, lines):
    async with engine.begin() as conn:
        for row in _dicts(table, lines):
            await conn.execute(insert(table), row)
    return len(lines)


@wrong("q4", expect="inside your SQL text")
async def load_lines_fstring_loop(engine, table, lines):
    async with engine.begin() as conn:
        for line in lines:
            await conn.execute(text(f"INSERT INTO {table.name} VALUES ({', '.join(map(str, line))})"))  # the bug on show
    return len(lines)


@wrong("q4", expect="cap those")
async def load_lines_multi_values(engine, table, lines):
    if not lines:
        return 0
    async with engine.begin() as conn:
        await conn.execute(insert(table).values(_dicts(table, lines)))  # one huge statement
    return len(lines)


@wrong("q4", expect="were not committed")
async def load_lines_without_commit(engine, table, lines):
    if not lines:
        return 0
    async with engine.connect() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
    return len(lines)


@wrong("q4", expect="DEFAULT VALUES")
async def load_lines_empty_list_unguarded(engine, table, lines):
    async with engine.begin() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
    return len(lines)


@wrong("q4", expect="stayed on")
async def load_lines_autocommit(engine, table, lines):
    if not lines:
        return 0
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # BUG: each row commits alone
        await conn.execute(insert(table), _dicts(table, lines))
    return len(lines)


@wrong("q4", expect="never awaited")
async def load_lines_forgets_await(engine, table, lines):
    if not lines:
        return 0
    async with engine.begin() as conn:
        conn.execute(insert(table), _dicts(table, lines))
    return len(lines)


@wrong("q4", expect="expected the number of rows inserted, 1500")
async def load_lines_returns_rowcount_of_nothing(engine, table, lines):
    if not lines:
        return 0
    async with engine.begin() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
    return 1500 if len(lines) != 1500 else 1499  # right only for some other data


# --- q5: count_albums ---------------------------------------------------------------------------

def _albums_of(name):
    return (select(func.count()).select_from(album)
            .join(artist, artist.c.artist_id == album.c.artist_id).where(artist.c.name == name))


@wrong("q5", expect="stayed open in the engine's pool")
async def count_albums_never_disposes(url, name):
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        return (await conn.execute(_albums_of(name))).scalar_one()


@wrong("q5", expect="when the query failed")
async def count_albums_disposes_on_success_only(url, name):
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        count = (await conn.execute(_albums_of(name))).scalar_one()
    await engine.dispose()
    return count


@wrong("q5", expect="never closed")
async def count_albums_leaks_the_connection(url, name):
    engine = create_async_engine(url)
    try:
        conn = await engine.connect()  # BUG: never closed, so dispose() cannot close it
        return (await conn.execute(_albums_of(name))).scalar_one()
    finally:
        await engine.dispose()


@wrong("q5", expect="MissingGreenlet")
async def count_albums_sync_engine(url, name):
    engine = create_engine(url)  # BUG: a sync engine on an async driver
    try:
        with engine.connect() as conn:
            return conn.execute(_albums_of(name)).scalar_one()
    finally:
        engine.dispose()


@wrong("q5", expect="broke your query")
async def count_albums_fstring_in_text(url, name):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(
                "SELECT count(*) FROM album JOIN artist ON artist.artist_id = album.artist_id "
                f"WHERE artist.name = '{name}'"  # the bug on show
            ))).scalar_one()
    finally:
        await engine.dispose()


@wrong("q5", expect="forget `await`")
async def count_albums_forgets_await(url, name):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = conn.execute(_albums_of(name))
            return result.scalar_one()
    finally:
        await engine.dispose()


@wrong("q5", expect="never disposed of")
async def count_albums_nullpool_never_disposed(url, name):
    # NullPool closes each connection as it is returned, so none stays open; dispose() is
    # still never called
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        return (await conn.execute(_albums_of(name))).scalar_one()


@wrong("q5", expect="when the query failed (a database without an album table): the engine")
async def count_albums_nullpool_disposed_on_success_only(url, name):
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        count = (await conn.execute(_albums_of(name))).scalar_one()
    await engine.dispose()  # BUG: skipped when the query raises
    return count


@correct("q5")
async def count_albums_nullpool_disposed(url, name):
    """A NullPool engine, disposed in finally all the same."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(_albums_of(name))).scalar_one()
    finally:
        await engine.dispose()


@wrong("q5", expect="psycopg")
async def count_albums_plain_postgresql_url(url, name):
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql")  # BUG: in 2.1 that means psycopg
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(_albums_of(name))).scalar_one()
    finally:
        await engine.dispose()


# --- differently-correct answers, from the independent audit (answers2/a06.py) ---

@correct("q1")
async def longest_tracks_text(conn, name, n):
    """text() with :g and :n bound, subquery IN for the genre."""
    rows = await conn.execute(text(
        "SELECT name, milliseconds FROM track WHERE genre_id IN "
        "(SELECT genre_id FROM genre WHERE name = :g) "
        "ORDER BY milliseconds DESC, name, track_id LIMIT :n"), {"g": name, "n": n})
    return [(r.name, r.milliseconds) for r in rows]


@correct("q2")
async def create_playlist_except_exception(engine, name, track_ids):
    """`except Exception` misses a CancelledError, yet a cancellation inside execute() makes
    SQLAlchemy invalidate the connection and check it back in: nothing is committed or leaked."""
    conn = await engine.connect()
    try:
        pid = (await conn.execute(insert(playlist).values(name=name).returning(playlist.c.playlist_id))).scalar_one()
        for t in track_ids:
            await conn.execute(insert(playlist_track).values(playlist_id=pid, track_id=t))
        await conn.commit()
    except Exception:
        await conn.rollback()
        await conn.close()
        raise
    await conn.close()
    return pid


@correct("q2")
async def create_playlist_begin(engine, name, track_ids):
    """engine.begin() commits, or rolls back on anything (cancellation included)."""
    async with engine.begin() as conn:
        pid = (await conn.execute(insert(playlist).values(name=name).returning(playlist.c.playlist_id))).scalar_one()
        rows = [{"playlist_id": pid, "track_id": t} for t in track_ids]
        if rows:
            await conn.execute(insert(playlist_track), rows)
    return pid


@correct("q2")
async def create_playlist_explicit(engine, name, track_ids):
    """connect(), explicit commit, rollback on BaseException."""
    async with engine.connect() as conn:
        try:
            pid = (await conn.execute(insert(playlist).values(name=name).returning(playlist.c.playlist_id))).scalar_one()
            for t in track_ids:
                await conn.execute(insert(playlist_track).values(playlist_id=pid, track_id=t))
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
    return pid


@correct("q3")
async def export_lines_partitions(conn, table, out):
    """yield_per + partitions, writerows per partition."""
    w = csv.writer(out)
    n = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id).execution_options(yield_per=1000))
    async for part in result.partitions():
        w.writerows(part)
        n += len(part)
    return n


@correct("q4")
async def load_lines_plain(engine, table, lines):
    """executemany in one execute() inside begin()."""
    if not lines:
        return 0
    async with engine.begin() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
    return len(lines)


@correct("q4")
async def load_lines_connect(engine, table, lines):
    """table.insert(), connect() and explicit commit."""
    rows = _dicts(table, lines)
    if not rows:
        return 0
    async with engine.connect() as conn:
        await conn.execute(table.insert(), rows)
        await conn.commit()
    return len(rows)


@correct("q5")
async def count_albums_plain(url, name):
    """try/finally dispose around async with connect()."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(_albums_of(name))).scalar_one()
    finally:
        await engine.dispose()


@correct("q5")
async def count_albums_orm(url, name):
    """ORM AsyncSession and a scalar subquery."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            stmt = select(func.count(Album.album_id)).where(
                Album.artist_id.in_(select(Artist.artist_id).where(Artist.name == name)))
            return await session.scalar(stmt)
    finally:
        await engine.dispose()


# --- every kind of input the statements allow: empty names, n = 0, leaks kept alive -----------

_KEPT = []  # a learner's module-level cache, which keeps a leaked connection alive


@wrong("q1", expect="never closed")
async def longest_tracks_keeps_a_connection(conn, name, n):
    extra = await conn.engine.connect()  # BUG: kept for later, never closed
    _KEPT.append(extra)
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n)
    return (await extra.execute(stmt)).all()


@wrong("q1", expect="LIMIT 0")
async def longest_tracks_n_or_none(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id)
    return (await conn.execute(stmt.limit(n or None))).all()  # BUG: n = 0 means no LIMIT at all


@wrong("q1", expect="no genre is called exactly")
async def longest_tracks_like(conn, name, n):
    stmt = (select(track.c.name, track.c.milliseconds)
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name.like(name))  # BUG: '%' and '_' are patterns, not characters
            .order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n))
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_empty_name_is_null(conn, name, n):
    """`name or None`: the empty name becomes IS NULL, another text, and still no genre."""
    stmt = (select(track.c.name, track.c.milliseconds)
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name == (name or None))
            .order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n))
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_scalar_subquery_early_zero(conn, name, n):
    """No query at all for n = 0; the genre found by a scalar subquery; Row objects returned."""
    if n <= 0:
        return []
    genre_id = select(genre.c.genre_id).where(genre.c.name == name).scalar_subquery()
    stmt = (select(track.c.name, track.c.milliseconds).where(track.c.genre_id == genre_id)
            .order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n))
    return list((await conn.execute(stmt)).all())


@wrong("q2", expect="store the name exactly as given")
async def create_playlist_default_name(engine, name, track_ids):
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(_new_playlist(name or "Untitled"))).scalar_one()  # BUG
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="when the second track 5 was refused")
async def create_playlist_two_transactions(engine, name, track_ids):
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
    async with engine.begin() as conn:  # BUG: the playlist is already committed
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@correct("q2")
async def create_playlist_insert_per_track(engine, name, track_ids):
    """One INSERT per track, all inside the one transaction: slower, still all or nothing."""
    async with engine.begin() as conn:
        playlist_id = (await conn.execute(
            insert(playlist).returning(playlist.c.playlist_id), {"name": name})).scalar_one()
        for track_id in track_ids:
            await conn.execute(insert(playlist_track).values(playlist_id=playlist_id, track_id=track_id))
    return playlist_id


@correct("q2")
async def create_playlist_connect_commit(engine, name, track_ids):
    """engine.connect() with an explicit commit at the end: an exception or a cancellation
    leaves the block before it, and the connection rolls back."""
    async with engine.connect() as conn:
        playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
        await conn.commit()
    return playlist_id


@wrong("q3", expect="memory grew with the table")
async def export_lines_partitions_as_big_as_the_table(conn, table, out):
    writer = csv.writer(out)
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for part in result.partitions(1_000_000):  # BUG: one partition holds every row
        writer.writerows(part)
        count += len(part)
    return count


@wrong("q3", expect="invoice_line_id order")
async def export_lines_newest_first(conn, table, out):
    writer = csv.writer(out)
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id.desc()))  # BUG
    async for part in result.partitions(1000):
        writer.writerows(part)
        count += len(part)
    return count


@correct("q3")
async def export_lines_row_by_row(conn, table, out):
    """One row at a time off the stream: slower, and the memory stays flat."""
    writer = csv.writer(out)
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for row in result:
        writer.writerow(row)
        count += 1
    return count


@correct("q3")
async def export_lines_yield_per(conn, table, out):
    """yield_per sets the partition size; partitions() then takes it."""
    writer = csv.writer(out)
    count = 0
    stmt = select(table).order_by(table.c.invoice_line_id).execution_options(yield_per=2000)
    result = await conn.stream(stmt)
    async for part in result.partitions():
        writer.writerows(part)
        count += len(part)
    return count


@wrong("q4", expect="Key each dict by the column's name")
async def load_lines_column_objects_as_keys(engine, table, lines):
    if not lines:
        return 0
    async with engine.begin() as conn:
        await conn.execute(insert(table), [dict(zip(table.c, line)) for line in lines])  # BUG: Column keys
    return len(lines)


@wrong("q4", expect="some line was inserted twice")
async def load_lines_twice_for_the_count(engine, table, lines):
    if not lines:
        return 0
    async with engine.begin() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
        result = await conn.execute(insert(table), _dicts(table, lines))  # BUG: "to get the rowcount"
    return result.rowcount


@correct("q4")
async def load_lines_exec_with_values_keys(engine, table, lines):
    """Column names taken from the Column objects; the count from the list itself."""
    names = [column.name for column in table.columns]
    rows = [dict(zip(names, line, strict=True)) for line in lines]
    if rows:
        async with engine.begin() as conn:
            await conn.execute(table.insert(), rows)
    return len(rows)


@correct("q4")
async def load_lines_connect_commit(engine, table, lines):
    """engine.connect() with an explicit commit: a failure leaves before the commit."""
    if not lines:
        return 0
    async with engine.connect() as conn:
        await conn.execute(insert(table), _dicts(table, lines))
        await conn.commit()
    return len(lines)


@wrong("q5", expect="an outer join from artist to album")
async def count_albums_outer_join(url, name):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = (select(func.count()).select_from(artist)
                    .outerjoin(album, album.c.artist_id == artist.c.artist_id)  # BUG: count(*) counts the NULL row
                    .where(artist.c.name == name))
            return (await conn.execute(stmt)).scalar_one()
    finally:
        await engine.dispose()


@wrong("q5", expect="expected 0")
async def count_albums_empty_name_means_all(url, name):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = select(func.count()).select_from(album)
            if name:  # BUG: an empty name counts every album
                stmt = stmt.join(artist, artist.c.artist_id == album.c.artist_id).where(artist.c.name == name)
            return (await conn.execute(stmt)).scalar_one()
    finally:
        await engine.dispose()


@correct("q5")
async def count_albums_subquery_engine_begin(url, name):
    """A scalar subquery for the artist, engine.begin(), dispose in finally."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            artist_ids = select(artist.c.artist_id).where(artist.c.name == name)
            return await conn.scalar(select(func.count(album.c.album_id)).where(album.c.artist_id.in_(artist_ids)))
    finally:
        await engine.dispose()


@correct("q5")
async def count_albums_outer_join_counting_albums(url, name):
    """An outer join is fine when it counts album ids: NULLs are not counted."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = (select(func.count(album.c.album_id)).select_from(artist)
                    .outerjoin(album, album.c.artist_id == artist.c.artist_id)
                    .where(artist.c.name == name))
            return (await conn.execute(stmt)).scalar_one()
    finally:
        await engine.dispose()


@wrong("q3", expect="expected the number of rows written, 0")
async def export_lines_counts_by_the_last_id(conn, table, out):
    writer = csv.writer(out)
    last = None
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    count = 0
    async for part in result.partitions(1000):
        writer.writerows(part)
        count += len(part)
        last = part[-1]
    return count if last is not None else None  # BUG: an empty table gives None, not 0


# --- ties by id, a leak only on failure, an id chosen by the code -----------------------------

@correct("q1")
async def longest_tracks_no_id_tiebreak(conn, name, n):
    """No track_id last: two tracks of the same length and name may swap, but their rows are
    alike, so the list returned is the same (the statement recommends track_id, unjudged)."""
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name).limit(n)
    return (await conn.execute(stmt)).all()


# --- q1: tie orders that hold only on some data, and ORDER BYs written other ways --------------

@wrong("q1", expect="ties are broken another way")
async def longest_tracks_ties_by_id_desc(conn, name, n):
    # BUG: newest first among tied tracks; right only where ids happen to run against names
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.track_id.desc()).limit(n)
    return (await conn.execute(stmt)).all()


@wrong("q1", expect="ties are broken another way")
async def longest_tracks_length_only(conn, name, n):
    # BUG: tied tracks come back in the order the database stores or finds them
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc()).limit(n)
    return (await conn.execute(stmt)).all()


@wrong("q1", expect="ties are broken another way")
async def longest_tracks_name_descending(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc(), track.c.name.desc(),
                                      track.c.track_id).limit(n)  # BUG: Z before A
    return (await conn.execute(stmt)).all()


@wrong("q1", expect="ties are broken another way")
async def longest_tracks_sorted_after_the_cut(conn, name, n):
    stmt = _longest(name, n).order_by(track.c.milliseconds.desc()).limit(n)
    rows = (await conn.execute(stmt)).all()
    # BUG: the database chose which tied tracks to keep; sorting them afterwards is too late
    return sorted(rows, key=lambda row: (-row[1], row[0]))


@correct("q1")
async def longest_tracks_positional_order_by(conn, name, n):
    """ORDER BY 2 DESC, 1: positions in the select list."""
    stmt = _longest(name, n).order_by(text("2 DESC, 1")).limit(n)
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_labels(conn, name, n):
    """Labelled columns, ordered by their labels."""
    stmt = (select(track.c.name.label("title"), track.c.milliseconds.label("ms"))
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name == name)
            .order_by(desc("ms"), "title", track.c.track_id).limit(n))
    return [(row.title, row.ms) for row in await conn.execute(stmt)]


@correct("q1")
async def longest_tracks_desc_function_and_id_desc(conn, name, n):
    """desc() as a function, asc() spelled out, and the unseen last key descending."""
    stmt = _longest(name, n).order_by(desc(track.c.milliseconds), track.c.name.asc(),
                                      track.c.track_id.desc()).limit(n)
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_order_by_text(conn, name, n):
    """The ORDER BY as text() inside select()."""
    stmt = _longest(name, n).order_by(text("track.milliseconds DESC, track.name, track.track_id")).limit(n)
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_orm_models(conn, name, n):
    """The ORM's mapped classes in a Core select(), joined by the relationship."""
    stmt = (select(Track.name, Track.milliseconds).join(Track.genre).where(Genre.name == name)
            .order_by(Track.milliseconds.desc(), Track.name, Track.track_id).limit(n))
    return [tuple(row) for row in (await conn.execute(stmt)).all()]


@wrong("q1", expect="no genre is called exactly")
async def longest_tracks_ilike(conn, name, n):
    stmt = (select(track.c.name, track.c.milliseconds)
            .join(genre, genre.c.genre_id == track.c.genre_id)
            .where(genre.c.name.ilike(name))  # BUG: a pattern, and case ignored
            .order_by(track.c.milliseconds.desc(), track.c.name, track.c.track_id).limit(n))
    return (await conn.execute(stmt)).all()


@correct("q1")
async def longest_tracks_lower_case_text(conn, name, n):
    """SQL written in lower case, with table aliases."""
    sql = text("select t.name, t.milliseconds from track t join genre g on g.genre_id = t.genre_id "
               "where g.name = :g order by t.milliseconds desc, t.name asc, t.track_id asc limit :n")
    return [tuple(row) for row in await conn.execute(sql, {"g": name, "n": n})]


@wrong("q2", expect="when your function raised")
async def create_playlist_closes_only_on_success(engine, name, track_ids):
    conn = await engine.connect()  # BUG: a failed insert leaves it checked out
    await conn.begin()
    playlist_id = (await conn.execute(_new_playlist(name))).scalar_one()
    if track_ids:
        await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    await conn.commit()
    await conn.close()
    return playlist_id


@wrong("q2", expect="names a playlist_id")
async def create_playlist_max_plus_one(engine, name, track_ids):
    async with engine.begin() as conn:
        # BUG: two calls at once can pick the same id
        playlist_id = await conn.scalar(select(func.coalesce(func.max(playlist.c.playlist_id), 0) + 1))
        await conn.execute(insert(playlist).values(playlist_id=playlist_id, name=name))
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q2", expect="did not come from the database")
async def create_playlist_max_plus_one_in_sql(engine, name, track_ids):
    async with engine.begin() as conn:
        # BUG: the id is worked out in the SQL, not numbered by the database
        playlist_id = await conn.scalar(text(
            "INSERT INTO playlist SELECT coalesce(max(playlist_id), 0) + 1, :name FROM playlist "
            "RETURNING playlist_id"), {"name": name})
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@correct("q2")
async def create_playlist_inserted_primary_key(engine, name, track_ids):
    """No RETURNING written: `inserted_primary_key` reads the id the database gave."""
    async with engine.begin() as conn:
        result = await conn.execute(insert(playlist).values(name=name))
        playlist_id = result.inserted_primary_key[0]
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@wrong("q5", expect="when your function raised")
async def count_albums_closes_only_on_success(url, name):
    engine = create_async_engine(url)
    try:
        conn = await engine.connect()  # BUG: the failed query leaves it checked out
        count = (await conn.execute(_albums_of(name))).scalar_one()
        await conn.close()
        return count
    finally:
        await engine.dispose()


@wrong("q3", expect="each line ended with")
async def export_lines_joined_by_hand(conn, table, out):
    # the values joined by hand: "\n" line ends where csv.writer writes "\r\n", and no quoting
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for row in result:
        out.write(",".join(str(value) for value in row) + "\n")
        count += 1
    return count


@wrong("q3", expect="written as floats")
async def export_lines_float_prices(conn, table, out):
    writer = csv.writer(out)
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for part in result.partitions(1000):
        for line_id, invoice_id, track_id, price, quantity in part:
            writer.writerow((line_id, invoice_id, track_id, float(price), quantity))  # BUG: 0.10 -> 0.1
            count += 1
    return count


@correct("q3")
async def export_lines_price_to_the_cent(conn, table, out):
    """The price formatted to two places: the same text as the Decimal of a Numeric(10, 2)."""
    writer = csv.writer(out)
    count = 0
    result = await conn.stream(select(table).order_by(table.c.invoice_line_id))
    async for part in result.partitions(1000):
        for line_id, invoice_id, track_id, price, quantity in part:
            writer.writerow((line_id, invoice_id, track_id, f"{price:.2f}", quantity))
            count += 1
    return count


@wrong("q2", expect="the id was read afterwards")
async def create_playlist_reads_max_after_insert(engine, name, track_ids):
    async with engine.begin() as conn:
        await conn.execute(insert(playlist).values(name=name))
        # BUG: the largest id need not be the one just inserted
        playlist_id = await conn.scalar(select(func.max(playlist.c.playlist_id)))
        if track_ids:
            await conn.execute(insert(playlist_track), _track_rows(playlist_id, track_ids))
    return playlist_id


@correct("q2")
async def create_playlist_orm_flush(engine, name, track_ids):
    """An ORM Playlist flushed in a session: the database numbers it, the object reads it back."""
    from course.models import Playlist

    async with AsyncSession(engine) as session, session.begin():
        new = Playlist(name=name)
        session.add(new)
        await session.flush()
        if track_ids:
            await session.execute(insert(playlist_track), _track_rows(new.playlist_id, track_ids))
        return new.playlist_id
