"""Wrong answers to exercises/07-orm-sessions-workbook.ipynb."""

import asyncio
from datetime import datetime
from decimal import Decimal

from sqlalchemy import create_engine, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session as SyncSession

from course.models import Artist, Invoice, InvoiceLine, Track
from tests.corpus import correct, wrong


def _sync_url(session):
    """The session's database behind a blocking driver: sqlite3, or psycopg for postgresql://."""
    url = session.bind.url
    return url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql")


# --- q1: track_or_none ----------------------------------------------------------------------

@wrong("q1", expect="did you forget `await`")
async def track_or_none_no_await(session, track_id):
    return session.get(Track, track_id)


@wrong("q1", expect="should return None")
async def track_or_none_one(session, track_id):
    return (await session.scalars(select(Track).where(Track.track_id == track_id))).first() \
        or (await session.scalars(select(Track).order_by(Track.track_id.desc()).limit(1))).one()


@wrong("q1", expect="insists on exactly one row")
async def track_or_none_scalar_one(session, track_id):
    return (await session.scalars(select(Track).where(Track.track_id == track_id))).one()


@wrong("q1", expect="identity map first")
async def track_or_none_select(session, track_id):
    return await session.scalar(select(Track).where(Track.track_id == track_id))


@wrong("q1", expect="inside your SQL text")
async def track_or_none_fstring(session, track_id):
    stmt = select(Track).from_statement(text(f"SELECT * FROM track WHERE track_id = {track_id}"))
    return await session.scalar(stmt)


@wrong("q1", expect="blocking sqlite3 driver")
async def track_or_none_sync_engine(session, track_id):
    with SyncSession(create_engine(_sync_url(session))) as sync:
        return sync.get(Track, track_id)


@wrong("q1", expect="returned None, but track")  # right only while ids run 1..3503 without a gap
async def track_or_none_by_position(session, track_id):
    tracks = (await session.scalars(select(Track).order_by(Track.track_id))).all()
    return tracks[track_id - 1] if track_id - 1 < len(tracks) else None


@wrong("q1", expect="does not belong to the session")
async def track_or_none_closes_session(session, track_id):
    async with session:  # closes the caller's session on the way out
        return await session.get(Track, track_id)


@wrong("q1", expect="not a Track")
async def track_or_none_name(session, track_id):
    return await session.scalar(select(Track.name).where(Track.track_id == track_id))


# --- q2: create_invoice ---------------------------------------------------------------------

async def _build(session, customer_id, lines):
    """The invoice and its lines, not yet added to the session (as the solution builds them)."""
    invoice = Invoice(customer_id=customer_id, invoice_date=datetime(2026, 1, 1), total=Decimal("0.00"))
    for track_id, quantity in lines:
        track = await session.get(Track, track_id)
        if track is None:
            raise LookupError(f"there is no track {track_id}")
        invoice.lines.append(InvoiceLine(track_id=track_id, unit_price=track.unit_price, quantity=quantity))
        invoice.total += track.unit_price * quantity
    return invoice


@wrong("q2", expect="can't be used in 'await' expression")
async def create_invoice_awaits_add(session, customer_id, lines):
    async with session.begin():
        invoice = await _build(session, customer_id, lines)
        await session.add(invoice)
        await session.flush()
        return invoice.invoice_id


@wrong("q2", expect="never committed")
async def create_invoice_no_commit(session, customer_id, lines):
    invoice = await _build(session, customer_id, lines)
    session.add(invoice)
    await session.flush()
    invoice_id = invoice.invoice_id
    await session.close()  # closing without a commit rolls back
    return invoice_id


@wrong("q2", expect="stayed in the database")
async def create_invoice_commits_invoice_first(session, customer_id, lines):
    invoice = Invoice(customer_id=customer_id, invoice_date=datetime(2026, 1, 1), total=Decimal("0.00"))
    session.add(invoice)
    await session.commit()  # too early: the invoice is saved before its lines
    try:
        for track_id, quantity in lines:
            track = await session.get(Track, track_id)
            session.add(InvoiceLine(invoice_id=invoice.invoice_id, track_id=track_id,
                                    unit_price=track.unit_price, quantity=quantity))
            invoice.total += track.unit_price * quantity
        await session.commit()
    except Exception:
        await session.rollback()
        raise
    return invoice.invoice_id


@wrong("q2", expect="does not catch CancelledError")
async def create_invoice_except_exception(session, customer_id, lines):
    try:
        invoice = await _build(session, customer_id, lines)
        session.add(invoice)
        await session.commit()
    except Exception:  # CancelledError is not an Exception: a cancellation skips this
        await session.rollback()
        raise
    return invoice.invoice_id


@wrong("q2", expect="returned None anyway")
async def create_invoice_swallows_cancellation(session, customer_id, lines):
    try:
        async with session.begin():
            invoice = await _build(session, customer_id, lines)
            session.add(invoice)
            await session.flush()
            return invoice.invoice_id
    except asyncio.CancelledError:
        return None


@wrong("q2", expect="It must fail")
async def create_invoice_swallows_errors(session, customer_id, lines):
    try:
        async with session.begin():
            invoice = await _build(session, customer_id, lines)
            session.add(invoice)
            await session.flush()
            return invoice.invoice_id
    except Exception:
        return -1


@wrong("q2", expect="each at the track's own price")  # right only while every track costs 0.99
async def create_invoice_fixed_price(session, customer_id, lines):
    async with session.begin():
        invoice = Invoice(customer_id=customer_id, invoice_date=datetime(2026, 1, 1), total=Decimal("0.00"))
        for track_id, quantity in lines:
            if await session.get(Track, track_id) is None:
                raise LookupError(track_id)
            price = Decimal("1.99") if track_id == 2819 else Decimal("0.99")
            invoice.lines.append(InvoiceLine(track_id=track_id, unit_price=price, quantity=quantity))
            invoice.total += price * quantity
        session.add(invoice)
        await session.flush()
        return invoice.invoice_id


@wrong("q2", expect="inside your SQL text")
async def create_invoice_fstring(session, customer_id, lines):
    async with session.begin():
        invoice = Invoice(customer_id=customer_id, invoice_date=datetime(2026, 1, 1), total=Decimal("0.00"))
        for track_id, quantity in lines:
            price = await session.scalar(text(f"SELECT unit_price FROM track WHERE track_id = {track_id}"))
            if price is None:
                raise LookupError(track_id)
            invoice.lines.append(InvoiceLine(track_id=track_id, unit_price=Decimal(str(price)), quantity=quantity))
            invoice.total += Decimal(str(price)) * quantity
        session.add(invoice)
        await session.flush()
        return invoice.invoice_id


@wrong("q2", expect="called but never awaited")
async def create_invoice_commit_without_await(session, customer_id, lines):
    invoice = await _build(session, customer_id, lines)
    session.add(invoice)
    await session.flush()
    session.commit()
    return invoice.invoice_id


@wrong("q2", expect="one per pair")  # right only for invoices of distinct tracks
async def create_invoice_last_line_only(session, customer_id, lines):
    async with session.begin():
        invoice = await _build(session, customer_id, lines)
        invoice.lines = invoice.lines[-1:] if len(lines) == 2 else invoice.lines
        session.add(invoice)
        await session.flush()
        return invoice.invoice_id


# --- q3: add_to_total -----------------------------------------------------------------------

@wrong("q3", expect="changes were lost")
async def add_to_total_read_modify_write(Session, invoice_id, amount):
    async with Session() as session:
        invoice = await session.get(Invoice, invoice_id)
        invoice.total += amount
        await session.commit()
        return invoice.total


@wrong("q3", expect="changes were lost")
async def add_to_total_lock_in_another_session(Session, invoice_id, amount):
    async with Session() as reader:
        total = (await reader.get(Invoice, invoice_id)).total
    async with Session.begin() as writer:  # the lock comes too late: the value read is old
        invoice = await writer.get(Invoice, invoice_id, with_for_update=True)
        invoice.total = total + amount
        return invoice.total


@wrong("q3", expect="never committed")
async def add_to_total_no_commit(Session, invoice_id, amount):
    async with Session() as session:
        invoice = await session.get(Invoice, invoice_id, with_for_update=True)
        invoice.total += amount
        await session.flush()
        return invoice.total


@wrong("q3", expect="still checked out")
async def add_to_total_leaks_session(Session, invoice_id, amount):
    session = Session()  # never closed
    invoice = await session.get(Invoice, invoice_id, with_for_update=True)
    invoice.total += amount
    await session.commit()
    await session.refresh(invoice)  # begins a new transaction: its connection stays out of the pool
    return invoice.total


@wrong("q3", expect="inside your SQL text")
async def add_to_total_fstring(Session, invoice_id, amount):
    async with Session.begin() as session:
        return await session.scalar(text(
            f"UPDATE invoice SET total = total + {amount} WHERE invoice_id = {invoice_id} RETURNING total"))


@wrong("q3", expect="psycopg")
async def add_to_total_sync_engine(Session, invoice_id, amount):
    engine = create_engine(Session.kw["bind"].url.set(drivername="postgresql"))
    with SyncSession(engine) as session, session.begin():
        invoice = session.get(Invoice, invoice_id, with_for_update=True)
        invoice.total += amount
        return invoice.total


@wrong("q3", expect="it should return the new total")
async def add_to_total_returns_amount(Session, invoice_id, amount):
    async with Session.begin() as session:
        await session.execute(update(Invoice).where(Invoice.invoice_id == invoice_id)
                              .values(total=Invoice.total + amount))
    return amount


@wrong("q3", expect="it should be")
async def add_to_total_float(Session, invoice_id, amount):
    async with Session.begin() as session:
        invoice = await session.get(Invoice, invoice_id, with_for_update=True)
        invoice.total = Decimal(round(float(invoice.total) + abs(float(amount)), 2)).quantize(Decimal("0.01"))
        return invoice.total


@wrong("q3", expect="did you forget `await`")
async def add_to_total_no_await(Session, invoice_id, amount):
    async with Session.begin() as session:
        invoice = session.get(Invoice, invoice_id, with_for_update=True)
        invoice.total += amount
        return invoice.total


# --- q4: track_names ------------------------------------------------------------------------

@wrong("q4", expect="used by")
async def track_names_shared_session(Session, track_ids):
    async with Session() as session:
        return list(await asyncio.gather(
            *(session.scalar(select(Track.name).where(Track.track_id == i)) for i in track_ids)))


@wrong("q4", expect="one at a time")
async def track_names_one_after_another(Session, track_ids):
    names = []
    for track_id in track_ids:
        async with Session() as session:
            names.append(await session.scalar(select(Track.name).where(Track.track_id == track_id)))
    return names


@wrong("q4", expect="still open")
async def track_names_leaks_sessions(Session, track_ids):
    async def one(track_id):
        session = Session()  # never closed: its connection stays out of the pool
        return await session.scalar(select(Track.name).where(Track.track_id == track_id))

    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="did you forget `await`")
async def track_names_no_await(Session, track_ids):
    async def one(track_id):
        async with Session() as session:
            return await session.scalar(select(Track.name).where(Track.track_id == track_id))

    return asyncio.gather(*(one(i) for i in track_ids))


@wrong("q4", expect="in another order")
async def track_names_one_query(Session, track_ids):
    async with Session() as session:
        rows = await session.execute(select(Track.track_id, Track.name).where(Track.track_id.in_(track_ids))
                                     .order_by(Track.track_id))
        found = dict(rows.all())
    return [found.get(i) for i in sorted(track_ids)]


@wrong("q4", expect="inside your SQL text")
async def track_names_fstring(Session, track_ids):
    async def one(track_id):
        async with Session() as session:
            return await session.scalar(text(f"SELECT name FROM track WHERE track_id = {track_id}"))

    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="blocking sqlite3 driver")
async def track_names_sync_engine(Session, track_ids):
    engine = create_engine(Session.kw["bind"].url.set(drivername="sqlite"))
    with SyncSession(engine) as session:
        return [session.scalar(select(Track.name).where(Track.track_id == i)) for i in track_ids]


@wrong("q4", expect="repeated id repeated")  # right only when every id is there, once
async def track_names_drops_missing(Session, track_ids):
    async def one(track_id):
        async with Session() as session:
            return await session.scalar(select(Track.name).where(Track.track_id == track_id))

    names = await asyncio.gather(*(one(i) for i in dict.fromkeys(track_ids)))
    return [n for n in names if n is not None]


# --- q5: save_artists -----------------------------------------------------------------------

def _upsert(session, artists):
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    return insert(Artist).values([{"artist_id": i, "name": n} for i, n in artists])


@wrong("q5", expect="kept their old names")
async def save_artists_do_nothing(session, artists):
    if artists:
        await session.execute(_upsert(session, artists).on_conflict_do_nothing(index_elements=[Artist.artist_id]))
        await session.commit()


@wrong("q5", expect="statements")
async def save_artists_merge_loop(session, artists):
    for artist_id, name in artists:
        await session.merge(Artist(artist_id=artist_id, name=name))
    await session.commit()


@wrong("q5", expect="nothing is committed")
async def save_artists_no_commit(session, artists):
    if artists:
        stmt = _upsert(session, artists)
        await session.execute(stmt.on_conflict_do_update(index_elements=[Artist.artist_id],
                                                         set_={"name": stmt.excluded.name}))


@wrong("q5", expect="broke your statement")
async def save_artists_fstring(session, artists):
    if artists:
        rows = ", ".join(f"(:id{n}, '{name}')" for n, (_, name) in enumerate(artists))
        await session.execute(text(
            f"INSERT INTO artist (artist_id, name) VALUES {rows} "
            "ON CONFLICT (artist_id) DO UPDATE SET name = excluded.name"),
            {f"id{n}": artist_id for n, (artist_id, _) in enumerate(artists)})
        await session.commit()


@wrong("q5", expect="inside your SQL text")
async def save_artists_fstring_ids(session, artists):
    if artists:
        stmt = _upsert(session, artists)
        await session.execute(stmt.on_conflict_do_update(index_elements=[Artist.artist_id],
                                                         set_={"name": stmt.excluded.name}))
        listed = ", ".join(str(i) for i, _ in artists)
        await session.execute(text(f"SELECT count(*) FROM artist WHERE artist_id IN ({listed})"))
        await session.commit()


@wrong("q5", expect="SQLite insert() construct on PostgreSQL")
async def save_artists_sqlite_only(session, artists):
    if artists:
        stmt = sqlite.insert(Artist).values([{"artist_id": i, "name": n} for i, n in artists])
        await session.execute(stmt.on_conflict_do_update(index_elements=[Artist.artist_id],
                                                         set_={"name": stmt.excluded.name}))
        await session.commit()


@wrong("q5", expect="can't be used in 'await' expression")
async def save_artists_awaits_add(session, artists):
    for artist_id, name in artists:
        await session.add(Artist(artist_id=artist_id, name=name))
    await session.commit()


@wrong("q5", expect="needs at least one row")
async def save_artists_empty_list(session, artists):
    stmt = _upsert(session, artists) if artists else sqlite.insert(Artist).values([])
    await session.execute(stmt.on_conflict_do_update(index_elements=[Artist.artist_id],
                                                     set_={"name": stmt.excluded.name}))
    await session.commit()


@wrong("q5", expect="a plain INSERT cannot update")  # right only while every id is new
async def save_artists_plain_insert(session, artists):
    if artists:
        await session.execute(insert(Artist).values([{"artist_id": i, "name": n} for i, n in artists]))
        await session.commit()


# --- differently-correct answers, from the independent audit (answers2/a07.py) ---

def _upsert_renaming(session, artists):
    dialect = session.bind.dialect.name
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = ins(Artist).values([{"artist_id": i, "name": n} for i, n in artists])
    return stmt.on_conflict_do_update(index_elements=[Artist.artist_id], set_={"name": stmt.excluded.name})


@correct("q1")
async def track_or_none_get(session, track_id):
    """session.get()."""
    return await session.get(Track, track_id)


@correct("q1")
async def track_or_none_get_one(session, track_id):
    """get_one() and NoResultFound -> None."""
    try:
        return await session.get_one(Track, track_id)
    except NoResultFound:
        return None


@correct("q2")
async def create_invoice_begin(session, customer_id, lines):
    """session.begin() commits or rolls back on any exit."""
    async with session.begin():
        inv = await _build(session, customer_id, lines)
        session.add(inv)
    return inv.invoice_id


@correct("q2")
async def create_invoice_one_query(session, customer_id, lines):
    """prices in one IN query, try/except BaseException rollback."""
    try:
        pairs = list(lines)
        ids = {t for t, _ in pairs}
        prices = dict((await session.execute(
            select(Track.track_id, Track.unit_price).where(Track.track_id.in_(ids)))).all()) if ids else {}
        missing = ids - prices.keys()
        if missing:
            raise ValueError(f"no such track(s): {sorted(missing)}")
        inv = Invoice(customer_id=customer_id, invoice_date=datetime.now(),
                      total=sum((prices[t] * q for t, q in pairs), Decimal("0")),
                      lines=[InvoiceLine(track_id=t, unit_price=prices[t], quantity=q) for t, q in pairs])
        session.add(inv)
        await session.commit()
        return inv.invoice_id
    except BaseException:
        await session.rollback()
        raise


@correct("q3")
async def add_to_total_atomic(Session, invoice_id, amount):
    """UPDATE ... SET total = total + :a RETURNING total."""
    async with Session() as s:
        new = await s.scalar(update(Invoice).where(Invoice.invoice_id == invoice_id)
                             .values(total=Invoice.total + amount).returning(Invoice.total))
        await s.commit()
        return new


@correct("q3")
async def add_to_total_for_update(Session, invoice_id, amount):
    """SELECT ... FOR UPDATE then write, in one transaction."""
    async with Session() as s, s.begin():
        inv = (await s.execute(select(Invoice).where(Invoice.invoice_id == invoice_id).with_for_update())).scalar_one()
        inv.total = inv.total + amount
        new = inv.total
    return new


@correct("q4")
async def track_names_gather(Session, track_ids):
    """gather, one session per task."""
    async def one(i):
        async with Session() as s:
            t = await s.get(Track, i)
            return t.name if t else None
    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@correct("q4")
async def track_names_taskgroup(Session, track_ids):
    """TaskGroup, scalar select per task."""
    async def one(i):
        async with Session() as s:
            return await s.scalar(select(Track.name).where(Track.track_id == i))
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(i)) for i in track_ids]
    return [t.result() for t in tasks]


@correct("q5")
async def save_artists_pg_only(session, artists):
    """postgresql.insert() on both backends: its ON CONFLICT DO UPDATE compiles and runs on SQLite too."""
    if not artists:
        return
    stmt = postgresql.insert(Artist).values([{"artist_id": i, "name": n} for i, n in artists])
    await session.execute(stmt.on_conflict_do_update(index_elements=[Artist.artist_id],
                                                     set_={"name": stmt.excluded.name}))
    await session.commit()


@correct("q5")
async def save_artists_plain(session, artists):
    """dialect's insert, one multi-VALUES statement, commit."""
    if artists:
        await session.execute(_upsert_renaming(session, artists))
        await session.commit()


@correct("q5")
async def save_artists_executemany(session, artists):
    """one execute() with a parameter list (executemany)."""
    if not artists:
        return
    ins = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = ins(Artist)
    stmt = stmt.on_conflict_do_update(index_elements=["artist_id"], set_={"name": stmt.excluded.name})
    await session.execute(stmt, [{"artist_id": i, "name": n} for i, n in artists])
    await session.commit()


@correct("q3")
async def add_to_total_get_for_update(Session, invoice_id, amount):
    """session.get(..., with_for_update=True) inside Session.begin()."""
    async with Session.begin() as s:
        inv = await s.get(Invoice, invoice_id, with_for_update=True)
        inv.total += amount
        new = inv.total
    return new


@correct("q4")
async def track_names_session_begin(Session, track_ids):
    """Session.begin() per task, create_task list."""
    async def one(i):
        async with Session.begin() as s:
            t = await s.get(Track, i)
            return None if t is None else t.name
    tasks = [asyncio.create_task(one(i)) for i in track_ids]
    return [await t for t in tasks]



# --- every kind of input the statements allow: a track twice, empty names; every rule enforced --

@wrong("q2", expect="a track may come twice")
async def create_invoice_lines_by_track(session, customer_id, lines):
    quantities = dict(lines)  # BUG: the same track twice keeps only its last pair
    async with session.begin():
        invoice = await _build(session, customer_id, list(quantities.items()))
        session.add(invoice)
        await session.flush()
        return invoice.invoice_id


@wrong("q2", expect="dropped without being closed")
async def create_invoice_in_a_session_of_its_own(session, customer_id, lines):
    from sqlalchemy.ext.asyncio import AsyncSession

    other = AsyncSession(session.bind, expire_on_commit=False)  # BUG: a second session, never closed
    async with other.begin():
        invoice = await _build(other, customer_id, lines)
        other.add(invoice)
    # reading after the commit begins a new transaction, which holds a connection until closed
    return await other.scalar(select(Invoice.invoice_id).where(Invoice.invoice_id == invoice.invoice_id))


@correct("q2")
async def create_invoice_summed_at_the_end(session, customer_id, lines):
    """add_all of the lines with invoice=..., the total summed once at the end."""
    async with session.begin():
        invoice = Invoice(customer_id=customer_id, invoice_date=datetime.now(), total=Decimal(0))
        made = []
        for track_id, quantity in lines:
            track = await session.get(Track, track_id)
            if track is None:
                raise ValueError(f"no track {track_id}")
            made.append(InvoiceLine(invoice=invoice, track_id=track_id, unit_price=track.unit_price,
                                    quantity=quantity))
        invoice.total = sum((line.unit_price * line.quantity for line in made), Decimal(0))
        session.add_all([invoice, *made])
        await session.flush()
        return invoice.invoice_id


_LOCK = asyncio.Lock()


@wrong("q3", expect="which is no total the invoice had")
async def add_to_total_returns_old_plus_amount(Session, invoice_id, amount):
    async with Session() as session:
        old = await session.scalar(select(Invoice.total).where(Invoice.invoice_id == invoice_id))
    async with Session.begin() as session:  # the change itself is atomic: nothing is lost
        await session.execute(update(Invoice).where(Invoice.invoice_id == invoice_id)
                              .values(total=Invoice.total + amount))
    return old + amount  # BUG: another call may have committed between the read and the update


@correct("q3")
async def add_to_total_asyncio_lock(Session, invoice_id, amount):
    """One process, one lock around read-modify-write: no update lost here (though another
    process would need the database's lock)."""
    async with _LOCK, Session.begin() as session:
        invoice = await session.get(Invoice, invoice_id)
        invoice.total += amount
        total = invoice.total
    return total


@wrong("q4", expect="a factory of sessions")
async def track_names_sessionmaker_as_session(Session, track_ids):
    async def one(track_id):
        return await Session.scalar(select(Track.name).where(Track.track_id == track_id))  # BUG
    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@correct("q4")
async def track_names_semaphore(Session, track_ids):
    """At most 4 lookups at once, each in its own session, by session.get."""
    limit = asyncio.Semaphore(4)

    async def one(track_id):
        async with limit, Session() as session:
            track = await session.get(Track, track_id)
            return None if track is None else track.name

    return [*await asyncio.gather(*map(one, track_ids))]


@wrong("q5", expect="no SELECT first")
async def save_artists_select_then_upsert(session, artists):
    if not artists:
        return
    await session.scalars(select(Artist.artist_id).where(Artist.artist_id.in_([i for i, _ in artists])))  # BUG
    await session.execute(_upsert_renaming(session, artists))
    await session.commit()


@wrong("q5", expect="the exercise asks for one")
async def save_artists_insert_then_update(session, artists):
    if not artists:
        return
    await session.execute(_upsert(session, artists).on_conflict_do_nothing(index_elements=[Artist.artist_id]))
    for artist_id, name in artists:  # BUG: one UPDATE per artist after the insert
        await session.execute(update(Artist).where(Artist.artist_id == artist_id).values(name=name))
    await session.commit()


@correct("q5")
async def save_artists_begin_block(session, artists):
    """session.begin() commits at the end of its block; the set_ taken from the dialect's excluded."""
    if artists:
        async with session.begin():
            await session.execute(_upsert_renaming(session, artists))


@wrong("q1", expect="identity map first")
async def track_or_none_always_fresh(session, track_id):
    return await session.get(Track, track_id, populate_existing=True)  # BUG: always asks the database


@wrong("q1", expect="should return None")
async def track_or_none_nearest(session, track_id):
    found = await session.get(Track, track_id)
    if found is None:  # BUG: "the closest track" instead of None
        found = await session.scalar(select(Track).where(Track.track_id <= track_id)
                                     .order_by(Track.track_id.desc()).limit(1))
    return found


@correct("q1")
async def track_or_none_dict_identity(session, track_id):
    """The primary key given as a dict."""
    return await session.get(Track, {"track_id": track_id})


@correct("q1")
async def track_or_none_identity_map_then_select(session, track_id):
    """Looks in the identity map by hand, then asks the database."""

    key = session.sync_session.identity_key(Track, track_id)
    held = session.identity_map.get(key)
    if held is not None:
        return held
    return await session.scalar(select(Track).where(Track.track_id == track_id))


_FLUSH_LOCK = asyncio.Lock()


@wrong("q3", expect="changes were lost")
async def add_to_total_lock_released_before_commit(Session, invoice_id, amount):
    async with Session.begin() as session:
        async with _FLUSH_LOCK:  # BUG: released at the flush, before the commit
            invoice = await session.get(Invoice, invoice_id)
            invoice.total += amount
            await session.flush()
        total = invoice.total
    return total


@wrong("q3", expect="changes were lost")
async def add_to_total_begin_without_lock(Session, invoice_id, amount):
    async with Session.begin() as session:  # its flush and commit run in a task of their own
        invoice = await session.get(Invoice, invoice_id)  # BUG: no FOR UPDATE
        invoice.total += amount
        total = invoice.total
    return total


async def _names_once(Session, track_ids):
    """Each distinct id looked up once, in its own task and session."""
    async def one(track_id):
        async with Session() as session:
            return await session.scalar(select(Track.name).where(Track.track_id == track_id))

    unique = list(dict.fromkeys(track_ids))
    return unique, dict(zip(unique, await asyncio.gather(*map(one, unique)), strict=True))


@wrong("q4", expect="a repeated id repeated")
async def track_names_each_id_once(Session, track_ids):
    unique, names = await _names_once(Session, track_ids)
    return [names[i] for i in unique]  # BUG: a repeated id comes back once


@correct("q4")
async def track_names_deduplicated_lookups(Session, track_ids):
    """A repeated id is looked up once, and its name given again in its place."""
    _, names = await _names_once(Session, track_ids)
    return [names[i] for i in track_ids]


# --- q2: the invoice added first, its lines after a query has flushed it -----------------------

@wrong("q2", expect="lazy-load `Invoice.lines`")
async def create_invoice_lines_after_autoflush(session, customer_id, lines):
    async with session.begin():
        invoice = Invoice(customer_id=customer_id, invoice_date=datetime.now(), total=Decimal(0))
        session.add(invoice)
        for track_id, quantity in lines:
            track = await session.get(Track, track_id)  # autoflush: the invoice is in the database now
            if track is None:
                raise LookupError(f"there is no track {track_id}")
            # BUG: a flushed invoice's unloaded collection is lazy-loaded, without await
            invoice.lines.append(InvoiceLine(track_id=track_id, unit_price=track.unit_price, quantity=quantity))
            invoice.total += track.unit_price * quantity
        await session.flush()
        return invoice.invoice_id


@correct("q2")
async def create_invoice_lines_added_on_their_own(session, customer_id, lines):
    """the invoice added first; each line added with invoice=..., never reading invoice.lines."""
    async with session.begin():
        invoice = Invoice(customer_id=customer_id, invoice_date=datetime.now(), total=Decimal(0))
        session.add(invoice)
        for track_id, quantity in lines:
            track = await session.get(Track, track_id)
            if track is None:
                raise LookupError(f"there is no track {track_id}")
            session.add(InvoiceLine(invoice=invoice, track_id=track_id, unit_price=track.unit_price,
                                    quantity=quantity))
            invoice.total += track.unit_price * quantity
        await session.flush()
        return invoice.invoice_id
