"""Wrong answers to exercises/08-relationships-and-loading-workbook.ipynb."""

from collections import defaultdict

from sqlalchemy import and_, func, inspect, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import async_object_session
from sqlalchemy.orm import joinedload, selectinload

from course.models import Album, Customer, Genre, Invoice, InvoiceLine, Track
from tests.corpus import correct, wrong

# --- q1: artist_albums ------------------------------------------------------------------------

ALBUMS = select(Album).order_by(Album.album_id)


@wrong("q1", expect="N+1 problem")
async def artist_albums_awaitable_attrs_loop(session, artist_id):
    albums = await session.scalars(ALBUMS.where(Album.artist_id == artist_id))
    return [(a.title, [t.name for t in await a.awaitable_attrs.tracks]) for a in albums]


@wrong("q1", expect="a lazy load")
async def artist_albums_lazy(session, artist_id):
    albums = await session.scalars(ALBUMS.where(Album.artist_id == artist_id))
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@wrong("q1", expect="call .unique() on the result")
async def artist_albums_joinedload_without_unique(session, artist_id):
    albums = (await session.scalars(
        ALBUMS.where(Album.artist_id == artist_id).options(joinedload(Album.tracks)))).all()
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@wrong("q1", expect="forget `await`")
async def artist_albums_without_await(session, artist_id):
    albums = session.scalars(ALBUMS.where(Album.artist_id == artist_id).options(selectinload(Album.tracks)))
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@wrong("q1", expect="written inside the text of your SQL")
async def artist_albums_fstring(session, artist_id):
    rows = await session.execute(text(
        "SELECT al.title, t.name FROM album al LEFT JOIN track t ON t.album_id = al.album_id "
        f"WHERE al.artist_id = {artist_id} ORDER BY al.album_id, t.track_id"))  # the mistake
    albums: dict[str, list[str]] = {}
    for title, name in rows:
        albums.setdefault(title, [])
        if name is not None:
            albums[title].append(name)
    return list(albums.items())


@wrong("q1", expect="which has no tracks")
async def artist_albums_inner_join(session, artist_id):
    rows = await session.execute(
        select(Album.title, Track.name).join(Album.tracks).where(Album.artist_id == artist_id)
        .order_by(Album.album_id, Track.track_id))
    albums: dict[str, list[str]] = {}
    for title, name in rows:
        albums.setdefault(title, []).append(name)
    return list(albums.items())


@wrong("q1", expect="share the title")
async def artist_albums_keyed_by_title(session, artist_id):
    rows = await session.execute(
        select(Album.title, Track.name).outerjoin(Album.tracks).where(Album.artist_id == artist_id)
        .order_by(Album.album_id, Track.track_id))
    albums: dict[str, list[str]] = {}
    for title, name in rows:
        albums.setdefault(title, [])
        if name is not None:
            albums[title].append(name)
    return list(albums.items())


@wrong("q1", expect="Is there a LIMIT")
async def artist_albums_first_twenty(session, artist_id):
    albums = await session.scalars(
        ALBUMS.where(Album.artist_id == artist_id).options(selectinload(Album.tracks)).limit(20))
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@wrong("q1", expect="returned Album objects")
async def artist_albums_objects(session, artist_id):
    return list(await session.scalars(
        ALBUMS.where(Album.artist_id == artist_id).options(selectinload(Album.tracks))))


# --- q2: genre_revenue ------------------------------------------------------------------------

def _revenue_query(amount, country_column, country):
    revenue = func.sum(amount)
    stmt = (select(Genre.name, revenue).join(Track, Track.genre_id == Genre.genre_id)
            .join(InvoiceLine, InvoiceLine.track_id == Track.track_id)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id))
    if country_column is Customer.country:
        stmt = stmt.join(Customer, Customer.customer_id == Invoice.customer_id)
    return (stmt.where(country_column == country).group_by(Genre.genre_id, Genre.name)
            .order_by(revenue.desc(), Genre.name))


@wrong("q2", expect="one aggregate query")
async def genre_revenue_per_genre(session, country):
    report = []
    for genre in await session.scalars(select(Genre).order_by(Genre.name)):
        total = await session.scalar(
            select(func.sum(InvoiceLine.unit_price * InvoiceLine.quantity))
            .join(Track, Track.track_id == InvoiceLine.track_id)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
            .where(Track.genre_id == genre.genre_id, Invoice.billing_country == country))
        if total is not None:
            report.append((genre.name, total))
    return sorted(report, key=lambda row: (-row[1], row[0]))


@wrong("q2", expect="added them up in Python")
async def genre_revenue_summed_in_python(session, country):
    rows = await session.execute(
        select(Genre.name, InvoiceLine.unit_price, InvoiceLine.quantity)
        .join(Track, Track.genre_id == Genre.genre_id)
        .join(InvoiceLine, InvoiceLine.track_id == Track.track_id)
        .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
        .where(Invoice.billing_country == country))
    totals: dict[str, object] = {}
    for name, price, quantity in rows:
        totals[name] = totals.get(name, 0) + price * quantity
    return sorted(totals.items(), key=lambda row: (-row[1], row[0]))


@wrong("q2", expect="written inside the text of your SQL")
async def genre_revenue_fstring(session, country):
    rows = await session.execute(text(
        "SELECT g.name, sum(il.unit_price * il.quantity) AS revenue FROM genre g "
        "JOIN track t ON t.genre_id = g.genre_id JOIN invoice_line il ON il.track_id = t.track_id "
        f"JOIN invoice i ON i.invoice_id = il.invoice_id WHERE i.billing_country = '{country}' "  # the mistake
        "GROUP BY g.genre_id, g.name ORDER BY revenue DESC, g.name"))
    return [tuple(row) for row in rows]


@wrong("q2", expect="multiply by the quantity")
async def genre_revenue_without_quantity(session, country):
    rows = await session.execute(_revenue_query(InvoiceLine.unit_price, Invoice.billing_country, country))
    return [tuple(row) for row in rows]


@wrong("q2", expect="the track's list price")
async def genre_revenue_list_price(session, country):
    rows = await session.execute(
        _revenue_query(Track.unit_price * InvoiceLine.quantity, Invoice.billing_country, country))
    return [tuple(row) for row in rows]


@wrong("q2", expect="not on the customer's country")
async def genre_revenue_customer_country(session, country):
    rows = await session.execute(
        _revenue_query(InvoiceLine.unit_price * InvoiceLine.quantity, Customer.country, country))
    return [tuple(row) for row in rows]


@wrong("q2", expect="breaks ties another way")
async def genre_revenue_ties_by_id(session, country):
    revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    rows = await session.execute(
        select(Genre.name, revenue).join(Track, Track.genre_id == Genre.genre_id)
        .join(InvoiceLine, InvoiceLine.track_id == Track.track_id)
        .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
        .where(Invoice.billing_country == country).group_by(Genre.genre_id, Genre.name)
        .order_by(revenue.desc(), Genre.genre_id))
    return [tuple(row) for row in rows]


@wrong("q2", expect="forget `await`")
async def genre_revenue_without_await(session, country):
    rows = session.execute(_revenue_query(InvoiceLine.unit_price * InvoiceLine.quantity,
                                          Invoice.billing_country, country))
    return [tuple(row) for row in rows]


@wrong("q2", expect="Join Genre with a plain (inner) join")
async def genre_revenue_outer_join_to_genre(session, country):
    # the outer join keeps the lines of tracks without a genre, as a (None, total) row
    revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    stmt = (select(Genre.name, revenue).select_from(InvoiceLine)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
            .join(Track, Track.track_id == InvoiceLine.track_id)
            .outerjoin(Genre, Genre.genre_id == Track.genre_id)
            .where(Invoice.billing_country == country)
            .group_by(Genre.genre_id, Genre.name).order_by(revenue.desc(), Genre.name))
    return [tuple(row) for row in await session.execute(stmt)]


# --- q3: invoice_detail -----------------------------------------------------------------------

def _detail(invoice):
    lines = [(line.track.name, line.track.album.title if line.track.album else None, line.quantity)
             for line in invoice.lines]
    return f"{invoice.customer.first_name} {invoice.customer.last_name}", lines


@wrong("q3", expect="which your query had not loaded")
async def invoice_detail_lazy(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id)
    return None if invoice is None else _detail(invoice)


@wrong("q3", expect="awaited awaitable_attrs")
async def invoice_detail_awaitable_attrs(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        return None
    customer = await invoice.awaitable_attrs.customer
    lines = []
    for line in await invoice.awaitable_attrs.lines:
        track = await line.awaitable_attrs.track
        album = await track.awaitable_attrs.album
        lines.append((track.name, album.title if album else None, line.quantity))
    return f"{customer.first_name} {customer.last_name}", lines


@wrong("q3", expect="'Track.album'")
async def invoice_detail_stops_at_track(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer), selectinload(Invoice.lines).selectinload(InvoiceLine.track)])
    return None if invoice is None else _detail(invoice)


@wrong("q3", expect="call .unique() on the result")
async def invoice_detail_joinedload_without_unique(session, invoice_id):
    invoice = (await session.scalars(select(Invoice).where(Invoice.invoice_id == invoice_id).options(
        joinedload(Invoice.customer),
        joinedload(Invoice.lines).joinedload(InvoiceLine.track).joinedload(Track.album)))).one_or_none()
    return None if invoice is None else _detail(invoice)


@wrong("q3", expect="forget `await`")
async def invoice_detail_without_await(session, invoice_id):
    invoice = session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
    return None if invoice is None else _detail(invoice)


@wrong("q3", expect="has no album")
async def invoice_detail_every_track_has_an_album(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
    if invoice is None:
        return None
    lines = [(line.track.name, line.track.album.title, line.quantity) for line in invoice.lines]
    return f"{invoice.customer.first_name} {invoice.customer.last_name}", lines


@wrong("q3", expect=".one() fails when no invoice")
async def invoice_detail_one(session, invoice_id):
    invoice = (await session.scalars(select(Invoice).where(Invoice.invoice_id == invoice_id).options(
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)))).one()
    return _detail(invoice)


@wrong("q3", expect="one query per line is N+1")
async def invoice_detail_query_per_line(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id, options=[selectinload(Invoice.customer),
                                                              selectinload(Invoice.lines)])
    if invoice is None:
        return None
    lines = []
    for line in invoice.lines:
        name, title = (await session.execute(
            select(Track.name, Album.title).outerjoin(Album, Album.album_id == Track.album_id)
            .where(Track.track_id == line.track_id))).one()
        lines.append((name, title, line.quantity))
    return f"{invoice.customer.first_name} {invoice.customer.last_name}", lines


def _invoice_rows(invoice_id, album_join):
    return (select(Customer.first_name, Customer.last_name, Track.name, Album.title,
                   InvoiceLine.quantity)
            .select_from(Invoice).join(Customer, Customer.customer_id == Invoice.customer_id)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
            .join(Track, Track.track_id == InvoiceLine.track_id)
            .join(Album, Album.album_id == Track.album_id, isouter=album_join == "outer")
            .where(Invoice.invoice_id == invoice_id).order_by(InvoiceLine.invoice_line_id))


@wrong("q3", expect="an inner join to Album drops it")
async def invoice_detail_inner_join_to_album(session, invoice_id):
    rows = (await session.execute(_invoice_rows(invoice_id, "inner"))).all()
    if not rows:
        return None
    return f"{rows[0][0]} {rows[0][1]}", [(r[2], r[3], r[4]) for r in rows]


@wrong("q3", expect="it has no lines")
async def invoice_detail_one_row_per_line(session, invoice_id):
    # one joined query: right for every invoice that has lines, None for one that has none
    rows = (await session.execute(_invoice_rows(invoice_id, "outer"))).all()
    if not rows:
        return None
    return f"{rows[0][0]} {rows[0][1]}", [(r[2], r[3], r[4]) for r in rows]


# --- q4: tracks_page --------------------------------------------------------------------------

KEY = tuple_(Track.name, Track.track_id)
LISTING = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id)


@wrong("q4", expect="sent OFFSET")
async def tracks_page_offset(session, after, size):
    skip = 0 if after is None else await session.scalar(
        select(func.count()).select_from(Track).where(KEY <= tuple_(*after)))
    return [tuple(row) for row in await session.execute(LISTING.offset(skip).limit(size))]


@wrong("q4", expect="cut the page in Python")
async def tracks_page_in_python(session, after, size):
    rows = [tuple(row) for row in await session.execute(LISTING)]
    if after is not None:
        rows = [row for row in rows if row > tuple(after)]
    return rows[:size]


@wrong("q4", expect="shares its name")
async def tracks_page_name_only(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        stmt = stmt.where(Track.name > after[0])
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="(>, not >=)")
async def tracks_page_at_or_after(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        stmt = stmt.where(KEY >= tuple_(*after))
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="written inside the text of your SQL")
async def tracks_page_fstring(session, after, size):
    where = "" if after is None else f"WHERE (name, track_id) > ('{after[0]}', {after[1]})"
    rows = await session.execute(text(
        f"SELECT name, track_id FROM track {where} ORDER BY name, track_id LIMIT :size"),  # the mistake
        {"size": size})
    return [tuple(row) for row in rows]


@wrong("q4", expect="not in (name, track_id) order")
async def tracks_page_by_id(session, after, size):
    stmt = select(Track.name, Track.track_id).order_by(Track.track_id).limit(size)
    if after is not None:
        stmt = stmt.where(Track.track_id > after[1])
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="forget `await`")
async def tracks_page_without_await(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        stmt = stmt.where(KEY > tuple_(*after))
    return [tuple(row) for row in session.execute(stmt)]


@wrong("q4", expect="the next 1 row(s) after that key")
async def tracks_page_one_extra(session, after, size):
    stmt = LISTING.limit(size + 1 if size < 5 else size)
    if after is not None:
        stmt = stmt.where(KEY > tuple_(*after))
    return [tuple(row) for row in await session.execute(stmt)]


# --- q5: track_labels -------------------------------------------------------------------------

@wrong("q5", expect="a lazy load")
async def track_labels_lazy(track):
    album, genre = track.album, track.genre
    return track.name, album.title if album else None, genre.name if genre else None


@wrong("q5", expect="forget `await`")
async def track_labels_without_await(track):
    album = track.awaitable_attrs.album
    genre = track.awaitable_attrs.genre
    return track.name, album.title, genre.name


@wrong("q5", expect="what `track.awaitable_attrs.<relationship>` returns")
async def track_labels_without_await_quietly(track):
    # no await, and getattr with a default hides it: the coroutines are dropped unawaited
    album = track.awaitable_attrs.album
    genre = track.awaitable_attrs.genre
    return track.name, getattr(album, "title", None), getattr(genre, "name", None)


@wrong("q5", expect="Return None in its place")
async def track_labels_every_track_has_an_album(track):
    album = await track.awaitable_attrs.album
    genre = await track.awaitable_attrs.genre
    return track.name, album.title, genre.name


@wrong("q5", expect="caught its error")
async def track_labels_swallowed(track):
    try:
        album = track.album
    except Exception:  # the mistake: hiding the lazy load
        album = None
    genre = await track.awaitable_attrs.genre
    return track.name, album.title if album else None, genre.name if genre else None


@wrong("q5", expect="a query of your own always goes to the database")
async def track_labels_own_queries(track):
    session = async_object_session(track)
    album = await session.scalar(select(Album).where(Album.album_id == track.album_id))
    genre = await session.scalar(select(Genre).where(Genre.genre_id == track.genre_id))
    return track.name, album.title if album else None, genre.name if genre else None


CHINOOK_GENRES = {1: "Rock", 2: "Jazz", 3: "Metal", 4: "Alternative & Punk", 7: "Latin"}


@wrong("q5", expect="Read the names from the related objects")
async def track_labels_genres_from_a_dict(track):
    album = await track.awaitable_attrs.album
    return track.name, album.title if album else None, CHINOOK_GENRES.get(track.genre_id, "Rock")


@wrong("q5", expect="the `genre` table")
async def track_labels_lazy_genre(track):
    album = await track.awaitable_attrs.album
    genre = track.genre
    return track.name, album.title if album else None, genre.name if genre else None


# --- differently-correct answers, from the independent audit (answers2/a08.py) ---

def _name(c):
    return f"{c.first_name} {c.last_name}"


@correct("q1")
async def artist_albums_selectin(session, artist_id):
    """selectinload, 2 statements."""
    albums = (await session.scalars(select(Album).options(selectinload(Album.tracks))
                                    .where(Album.artist_id == artist_id).order_by(Album.album_id))).all()
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@correct("q1")
async def artist_albums_joined_unique(session, artist_id):
    """joinedload + unique(), 1 statement."""
    albums = (await session.scalars(select(Album).options(joinedload(Album.tracks))
                                    .where(Album.artist_id == artist_id).order_by(Album.album_id))).unique().all()
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@correct("q1")
async def artist_albums_outer_rows(session, artist_id):
    """one OUTER JOIN of columns, grouped in Python."""
    rows = await session.execute(select(Album.album_id, Album.title, Track.name)
                                 .outerjoin(Track, Track.album_id == Album.album_id)
                                 .where(Album.artist_id == artist_id).order_by(Album.album_id, Track.track_id))
    out, titles = defaultdict(list), {}
    for aid, title, tname in rows:
        titles[aid] = title
        if tname is not None:
            out[aid].append(tname)
    return [(titles[a], out[a]) for a in titles]


@correct("q2")
async def genre_revenue_plain(session, country):
    """one GROUP BY over the price paid."""
    rev = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    stmt = (select(Genre.name, rev).select_from(InvoiceLine)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
            .join(Track, Track.track_id == InvoiceLine.track_id).join(Genre, Genre.genre_id == Track.genre_id)
            .where(Invoice.billing_country == country).group_by(Genre.genre_id, Genre.name)
            .order_by(rev.desc(), Genre.name))
    return [tuple(r) for r in await session.execute(stmt)]


@correct("q2")
async def genre_revenue_relationships(session, country):
    """joins along relationships, GROUP BY name, label ordering."""
    rev = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity).label("revenue")
    stmt = (select(Genre.name, rev).join_from(Invoice, Invoice.lines).join(InvoiceLine.track).join(Track.genre)
            .where(Invoice.billing_country == country).group_by(Genre.name).order_by(rev.desc(), Genre.name))
    return [(g, r) for g, r in (await session.execute(stmt)).all()]


@correct("q3")
async def invoice_detail_loaders(session, invoice_id):
    """every relationship named in loader options."""
    inv = await session.scalar(select(Invoice).where(Invoice.invoice_id == invoice_id).options(
        joinedload(Invoice.customer),
        selectinload(Invoice.lines).joinedload(InvoiceLine.track).joinedload(Track.album)))
    if inv is None:
        return None
    return _name(inv.customer), [(ln.track.name, ln.track.album.title if ln.track.album else None, ln.quantity)
                                 for ln in sorted(inv.lines, key=lambda x: x.invoice_line_id)]


@correct("q3")
async def invoice_detail_columns(session, invoice_id):
    """columns only, outer joins, no relationship loaded."""
    rows = (await session.execute(
        select(Customer.first_name, Customer.last_name, Track.name, Album.title, InvoiceLine.quantity)
        .select_from(Invoice).join(Customer, Customer.customer_id == Invoice.customer_id)
        .outerjoin(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
        .outerjoin(Track, Track.track_id == InvoiceLine.track_id).outerjoin(Album, Album.album_id == Track.album_id)
        .where(Invoice.invoice_id == invoice_id).order_by(InvoiceLine.invoice_line_id))).all()
    if not rows:
        return None
    return f"{rows[0][0]} {rows[0][1]}", [(r[2], r[3], r[4]) for r in rows if r[2] is not None]


@correct("q4")
async def tracks_page_tuple(session, after, size):
    """row-value comparison."""
    stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id).limit(size)
    if after is not None:
        stmt = stmt.where(tuple_(Track.name, Track.track_id) > tuple_(after[0], after[1]))
    return [tuple(r) for r in await session.execute(stmt)]


@correct("q4")
async def tracks_page_or_and(session, after, size):
    """name > n OR (name = n AND id > i)."""
    stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id).limit(size)
    if after is not None:
        n, i = after
        stmt = stmt.where(or_(Track.name > n, and_(Track.name == n, Track.track_id > i)))
    return [(r.name, r.track_id) for r in await session.execute(stmt)]


@correct("q5")
async def track_labels_plain(track):
    """awaitable_attrs with None checks."""
    a = await track.awaitable_attrs.album
    g = await track.awaitable_attrs.genre
    return track.name, a.title if a is not None else None, g.name if g is not None else None


@correct("q5")
async def track_labels_inspect(track):
    """Not the suggested API: load only what is unloaded, via run_sync."""
    state = inspect(track)
    if {"album", "genre"} & state.unloaded:
        await async_object_session(track).run_sync(lambda _s: (track.album, track.genre))
    return track.name, track.album.title if track.album else None, track.genre.name if track.genre else None



# --- causes named only when seen; every rule enforced; every kind of input sent ----------------

@wrong("q1", expect="ran 3 statements (on artist, album, track)")
async def artist_albums_artist_then_albums_then_tracks(session, artist_id):
    from course.models import Artist

    if await session.get(Artist, artist_id) is None:  # BUG: a third statement, for the artist
        return []
    albums = (await session.scalars(ALBUMS.where(Album.artist_id == artist_id))).all()
    tracks = (await session.scalars(select(Track).where(Track.album_id.in_([a.album_id for a in albums]))
                                    .order_by(Track.track_id))).all()
    by_album = defaultdict(list)
    for t in tracks:
        by_album[t.album_id].append(t.name)
    return [(a.title, by_album[a.album_id]) for a in albums]


@correct("q1")
async def artist_albums_subqueryload(session, artist_id):
    """subqueryload: two statements too, the second one for all the tracks."""
    from sqlalchemy.orm import subqueryload

    albums = await session.scalars(ALBUMS.where(Album.artist_id == artist_id).options(subqueryload(Album.tracks)))
    return [(a.title, [t.name for t in a.tracks]) for a in albums]


@wrong("q2", expect="a float")
async def genre_revenue_as_float(session, country):
    stmt = _revenue_query(InvoiceLine.unit_price * InvoiceLine.quantity, Invoice.billing_country, country)
    return [(name, round(float(total), 2)) for name, total in await session.execute(stmt)]  # BUG: not a Decimal


@wrong("q2", expect="the exercise promises a Decimal")
async def genre_revenue_text(session, country):
    rows = await session.execute(text(
        "SELECT g.name, SUM(il.unit_price * il.quantity) AS revenue FROM genre g "
        "JOIN track t ON t.genre_id = g.genre_id JOIN invoice_line il ON il.track_id = t.track_id "
        "JOIN invoice i ON i.invoice_id = il.invoice_id WHERE i.billing_country = :country "
        "GROUP BY g.genre_id, g.name ORDER BY revenue DESC, g.name"), {"country": country})
    return [tuple(row) for row in rows]  # floats on SQLite


@correct("q2")
async def genre_revenue_text_typed(session, country):
    """text() with its column typed as Numeric: Decimal on both backends."""
    from sqlalchemy import Numeric, String

    stmt = text(
        "SELECT g.name, SUM(il.unit_price * il.quantity) AS revenue FROM genre g "
        "JOIN track t ON t.genre_id = g.genre_id JOIN invoice_line il ON il.track_id = t.track_id "
        "JOIN invoice i ON i.invoice_id = il.invoice_id WHERE i.billing_country = :country "
        "GROUP BY g.genre_id, g.name ORDER BY revenue DESC, g.name"
    ).columns(name=String, revenue=Numeric(10, 2))
    return [tuple(row) for row in await session.execute(stmt, {"country": country})]


@wrong("q4", expect="an OFFSET computed in the SQL itself")
async def tracks_page_offset_subquery(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        skip = select(func.count()).select_from(Track).where(KEY <= tuple_(*after)).scalar_subquery()
        stmt = stmt.offset(skip)
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="looked at the name alone")
async def tracks_page_name_at_or_after(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        stmt = stmt.where(Track.name >= after[0])  # BUG: the key lacks track_id
    return [tuple(row) for row in await session.execute(stmt)]


@correct("q4")
async def tracks_page_offset_zero(session, after, size):
    """An explicit OFFSET 0 skips nothing: keyset all the same."""
    stmt = LISTING.limit(size).offset(0)
    if after is not None:
        stmt = stmt.where(or_(Track.name > after[0], and_(Track.name == after[0], Track.track_id > after[1])))
    return [(name, track_id) for name, track_id in await session.execute(stmt)]


@wrong("q5", expect="put it in front of the whole expression")
async def track_labels_await_on_the_title(track):
    title = await track.awaitable_attrs.album.title  # BUG: .title is read before the await
    name = await track.awaitable_attrs.genre.name
    return track.name, title, name


@wrong("q5", expect="running at once on the track's one session")
async def track_labels_gathered(track):
    import asyncio

    album, genre = await asyncio.gather(track.awaitable_attrs.album, track.awaitable_attrs.genre)
    return track.name, album.title if album else None, genre.name if genre else None


@correct("q5")
async def track_labels_getattr_loop(track):
    """Both relationships awaited in turn through getattr on awaitable_attrs."""
    album, genre = [await getattr(track.awaitable_attrs, rel) for rel in ("album", "genre")]
    return track.name, album and album.title, genre and genre.name


@wrong("q3", expect="first name, space, last name")
async def invoice_detail_last_name_first(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
    if invoice is None:
        return None
    name, lines = _detail(invoice)
    return f"{invoice.customer.last_name}, {invoice.customer.first_name}", lines  # BUG


@wrong("q3", expect="right lines in the wrong order")
async def invoice_detail_lines_by_track_name(session, invoice_id):
    invoice = await session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
    if invoice is None:
        return None
    name, lines = _detail(invoice)
    return name, sorted(lines, key=lambda line: line[0])  # BUG: by track name


@correct("q3")
async def invoice_detail_joinedload_unique(session, invoice_id):
    """One statement: joinedload all the way, unique(), and scalar_one_or_none()."""
    stmt = (select(Invoice).where(Invoice.invoice_id == invoice_id).options(
        joinedload(Invoice.customer),
        joinedload(Invoice.lines).joinedload(InvoiceLine.track).joinedload(Track.album)))
    invoice = (await session.execute(stmt)).unique().scalar_one_or_none()
    return None if invoice is None else _detail(invoice)


# --- messages that name what was seen: tracks by name, other sums, pages, empty strings -----

@wrong("q1", expect="the same tracks in track_id order")
async def artist_albums_tracks_by_name(session, artist_id):
    rows = (await session.execute(
        select(Album.album_id, Album.title, Track.name).outerjoin(Track, Track.album_id == Album.album_id)
        .where(Album.artist_id == artist_id).order_by(Album.album_id, Track.name))).all()  # BUG: by name
    albums = {}
    for album_id, title, name in rows:
        albums.setdefault(album_id, (title, []))[1].extend([name] if name is not None else [])
    return list(albums.values())


@wrong("q2", expect="the track's list price once")
async def genre_revenue_list_price_once(session, country):
    # BUG: the track's list price, once per line: neither the price paid nor the quantity
    rows = await session.execute(_revenue_query(Track.unit_price, Invoice.billing_country, country))
    return [tuple(row) for row in rows]


@wrong("q2", expect="the sums differ")
async def genre_revenue_invoice_totals(session, country):
    # BUG: each invoice's whole total, once per line of the genre, not the line's own amount
    rows = await session.execute(_revenue_query(Invoice.total, Invoice.billing_country, country))
    return [tuple(row) for row in rows]


@correct("q3")
async def invoice_detail_selectinload_everywhere(session, invoice_id):
    """selectinload for the single parents too: more statements than joinedload, still no lazy load."""
    invoice = await session.get(Invoice, invoice_id, options=[
        selectinload(Invoice.customer),
        selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
    if invoice is None:
        return None
    return (f"{invoice.customer.first_name} {invoice.customer.last_name}",
            [(line.track.name, line.track.album.title if line.track.album else None, line.quantity)
             for line in invoice.lines])


@wrong("q4", expect="likely it compares track_id alone")
async def tracks_page_id_key(session, after, size):
    stmt = LISTING.limit(size)
    if after is not None:
        stmt = stmt.where(Track.track_id > after[1])  # BUG: the key is (name, track_id)
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="came back in no set order")
async def tracks_page_ordered_by_name_only(session, after, size):
    stmt = select(Track.name, Track.track_id).order_by(Track.name).limit(size)  # BUG: ties unordered
    if after is not None:
        stmt = stmt.where(KEY > tuple_(*after))
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q4", expect="came back in no set order")
async def tracks_page_ties_newest_first(session, after, size):
    stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id.desc()).limit(size)
    if after is not None:  # BUG: the ORDER BY and the WHERE disagree on ties
        stmt = stmt.where(KEY > tuple_(*after))
    return [tuple(row) for row in await session.execute(stmt)]


@wrong("q5", expect="not an empty string")
async def track_labels_empty_strings(track):
    album = await track.awaitable_attrs.album
    genre = await track.awaitable_attrs.genre
    return track.name, album.title if album else "", genre.name if genre else ""  # BUG: "" for None
