"""Checks for exercises/08-relationships-and-loading-workbook.ipynb.

Every check runs the learner's function on a fresh Chinook copy, first on SQLite, then on
PostgreSQL, with rows the check adds itself (an artist, albums, tracks, a genre, a customer and
an invoice with quotes in their names and ids far from Chinook's). It gives the function a new
AsyncSession for every call, and counts the statements each call sends with StatementCounter.
"""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, select, tuple_
from sqlalchemy.exc import InvalidRequestError, MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import raiseload, selectinload

from course.checking.checks import Exercise, LearnerError, NeverAwaited, Wrong, call
from course.db.engines import BACKENDS, fresh_engine_url
from course.db.postgres import PgDatabase, drop_postgres
from course.models import Album, Artist, Customer, Genre, Invoice, InvoiceLine, Track
from course.probes import ConnectionLeaks, StatementCounter

LIMIT = 30.0  # seconds: the first check of a session may start PostgreSQL and clone Chinook

# --- the rows every check adds: quotes in names, ids far from Chinook's and out of order -----

ARTIST_ID = 7654321          # an artist with four albums: one without tracks, two with one title
NO_ALBUMS_ID = 7654329       # an artist with no album at all
INVOICE_ID = 9000001
EMPTY_INVOICE_ID = 9000002   # an invoice with no lines at all
ARTIST_NAME = 'Guns N\' Roses "live"'
TIE_GENRE = "Bossa 'Nova'"
COUNTRY = "Côte d'Ivoire"    # only the check's invoice is billed there; its customer lives in Ireland
ROCK_TRACK, JAZZ_TRACK = 1, 63


def _seed_rows() -> list[Any]:
    """Rows inserted before the learner's code runs, deliberately not in id order."""
    price = Decimal("0.99")
    track = dict(media_type_id=1, milliseconds=200_000, unit_price=price)
    return [
        Genre(genre_id=90001, name=TIE_GENRE),
        Artist(artist_id=ARTIST_ID, name=ARTIST_NAME),
        Artist(artist_id=NO_ALBUMS_ID, name="Nobody's Band"),
        Album(album_id=900007, title="x' OR '1'='1", artist_id=ARTIST_ID),
        Album(album_id=900001, title="Don't Cry (Live)", artist_id=ARTIST_ID),
        Album(album_id=900004, title="Silence", artist_id=ARTIST_ID),  # no tracks
        Album(album_id=900009, title="Don't Cry (Live)", artist_id=ARTIST_ID),  # a title used twice
        Track(track_id=900150, name="Don't Cry (Alternate Lyrics)", album_id=900009, genre_id=1, **track),
        Track(track_id=900141, name="Samba d'Ouro", album_id=900001, genre_id=90001, **track),
        Track(track_id=900125, name="Don't Cry", album_id=900001, genre_id=1, **track),
        Track(track_id=900121, name="Intro", album_id=900001, genre_id=1, **track),
        Track(track_id=900130, name="O'Brien", album_id=900007, genre_id=1, **track),
        Track(track_id=900122, name="'; DROP TABLE track; --", album_id=900007, genre_id=1, **track),
        Track(track_id=900140, name="Lonely 'Single'", album_id=None, genre_id=None, **track),
        Customer(customer_id=7000001, first_name="Siobhán", last_name="O'Brien", email="s@example.ie",
                 country="Ireland"),
        Invoice(invoice_id=INVOICE_ID, customer_id=7000001, invoice_date=datetime(2026, 11, 27),
                billing_country=COUNTRY, total=Decimal("5.97")),
        Invoice(invoice_id=EMPTY_INVOICE_ID, customer_id=7000001, invoice_date=datetime(2026, 11, 28),
                billing_country="Ireland", total=Decimal("0.00")),
        # Rock and Bossa 'Nova' tie at 1.50 in COUNTRY; Jazz leads with 1.98. The Bossa line was
        # sold at a discount, three at a time; Chinook's own lines are all 1 at the track's price.
        InvoiceLine(invoice_line_id=9500005, invoice_id=INVOICE_ID, track_id=900141,
                    unit_price=Decimal("0.50"), quantity=3),
        InvoiceLine(invoice_line_id=9500003, invoice_id=INVOICE_ID, track_id=ROCK_TRACK,
                    unit_price=Decimal("1.50"), quantity=1),
        InvoiceLine(invoice_line_id=9500009, invoice_id=INVOICE_ID, track_id=900140,
                    unit_price=price, quantity=1),
        InvoiceLine(invoice_line_id=9500004, invoice_id=INVOICE_ID, track_id=JAZZ_TRACK,
                    unit_price=price, quantity=2),
    ]


@asynccontextmanager
async def _database(name: str, backend: str) -> AsyncIterator[AsyncEngine]:
    """A fresh Chinook copy with the check's rows, as an engine; dropped afterwards."""
    url = await fresh_engine_url(name, backend)
    engine = create_async_engine(url)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            session.add_all(_seed_rows())
        yield engine
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_postgres(PgDatabase(name, url.database or "", ""))


async def _on_both(name: str, body: Callable[[AsyncEngine, str], Any]) -> str:
    """Run body on SQLite, then PostgreSQL (most wrong answers are caught on the first)."""
    remark = ""
    for backend in BACKENDS:
        async with _database(f"check_08_{name}", backend) as engine:
            remark = await body(engine, backend)
    return remark


class _Recorder(StatementCounter):
    """A StatementCounter that keeps each statement's parameters too, and the most statements
    that were in flight at once (two at once on one session: loads gathered concurrently)."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.parameters: list[Any] = []
        self.in_flight = self.peak = 0

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        super()._on_execute(conn, cursor, statement, parameters, context, executemany)
        self.parameters.append(parameters)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _done(self, *args: Any) -> None:
        self.in_flight -= 1

    def __enter__(self) -> _Recorder:
        super().__enter__()
        event.listen(self.engine, "after_cursor_execute", self._done)
        event.listen(self.engine, "handle_error", self._done)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "after_cursor_execute", self._done)
        event.remove(self.engine, "handle_error", self._done)
        super().__exit__(*exc)


# --- running the learner's function, with plain words for the loading errors ----------------

LAZY = ("{what} hit a lazy load: it read a relationship that its query had not loaded{table}, so "
        "SQLAlchemy tried to run SQL behind your back, which an AsyncSession cannot do "
        "(MissingGreenlet). {fix}")
SWALLOWED = ("your function hit a lazy load and caught its error (SQLAlchemy had started a query "
             "it could not await, and the coroutine was left behind). Don't hide it: {fix}")
UNIQUE = ("joinedload() on a collection repeats each parent row once per child, so SQLAlchemy "
          "refuses to hand out the rows until you call .unique() on the result "
          "(`(await session.scalars(stmt)).unique().all()`). Or use selectinload(), which needs "
          "no unique().")


def _missing_greenlet(exc: BaseException | None) -> bool:
    if isinstance(exc, MissingGreenlet):
        return True
    return isinstance(exc, StatementError) and isinstance(exc.orig, MissingGreenlet)


def _lazy_table(exc: BaseException) -> str:
    """The table a lazy load went for, when the error shows its SQL (SQLite's does)."""
    statement = getattr(exc, "statement", None) or ""
    found = re.search(r"\bFROM\s+(\w+)", statement)
    return f" (it went for the `{found[1]}` table)" if found else ""


AWAIT_TOO_LATE = ("{what} read `.{attribute}` from a coroutine ({error}): a load was not "
                  "awaited before `.{attribute}` was read. Did you forget `await`, or put it in "
                  "front of the whole expression? In `await track.awaitable_attrs.album."
                  "{attribute}` Python reads `.{attribute}` first and awaits last. Await the "
                  "relationship, then read from it: `album = await track.awaitable_attrs.album`, "
                  "then `album.{attribute}` (or `(await track.awaitable_attrs.album).{attribute}`).")
DROPPED = ("{n} connection(s) your code opened were dropped without being closed: the garbage "
           "collector found them still checked out of the pool after your function returned (the "
           "check closed them). Use the session you were given, or open your own with `async "
           "with`, so it goes back to the pool.")


def _await_too_late(exc: BaseException | None, what: str) -> str | None:
    """The message for `await x.awaitable_attrs.rel.attr`, if that is what failed."""
    found = re.search(r"'coroutine' object has no attribute '(\w+)'", str(exc)) \
        if isinstance(exc, AttributeError) else None
    return AWAIT_TOO_LATE.format(what=what, attribute=found[1], error=exc) if found else None


async def _run(fn: Any, *args: Any, what: str, fix: str) -> Any:
    """call(), with the loading mistakes of this lesson told in plain words, and connections
    the code dropped unclosed closed here, quietly."""
    leaks = ConnectionLeaks()
    try:
        with leaks:
            result = await _explained(fn, *args, what=what, fix=fix)
    finally:
        dropped = await leaks.settle(held=False)
    if dropped:
        raise Wrong(DROPPED.format(n=dropped))
    return result


async def _explained(fn: Any, *args: Any, what: str, fix: str) -> Any:
    never_awaited = ""
    with warnings.catch_warnings():
        # A forgotten await leaves the learner's coroutine inside the error (AttributeError keeps
        # the object it was read on), and aiosqlite's lazy load leaves an un-awaited
        # Connection.cursor() behind: both are collected here, not in some later cell.
        warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
        try:
            return await call(fn, *args)
        except Wrong as exc:
            message = str(exc)
            if isinstance(exc, NeverAwaited) and exc.name == "cursor":
                message = SWALLOWED.format(fix=fix)
            message = _await_too_late(exc.__cause__, what) or message
            if isinstance(exc, NeverAwaited) and message == str(exc):
                never_awaited = exc.name  # passed on as it came, for the check to say more
        except LearnerError as exc:
            cause = exc.__cause__
            if late := _await_too_late(cause, what):
                message = late
            elif _missing_greenlet(cause):
                message = LAZY.format(what=what, table=_lazy_table(cause), fix=fix[:1].upper() + fix[1:])
            elif isinstance(cause, InvalidRequestError) and "unique() method must be invoked" in str(cause):
                message = UNIQUE
            else:
                raise
        gc.collect()  # the error and what it held are gone once the except block has ended
    raise NeverAwaited(never_awaited) if never_awaited else Wrong(message)


def _strict(session: AsyncSession) -> None:
    """Make every lazy load in this session raise at once: raiseload('*') on each ORM select."""
    @event.listens_for(session.sync_session, "do_orm_execute")
    def _no_lazy(state: Any) -> None:
        if state.is_select:
            state.statement = state.statement.options(raiseload("*"))


def _raised_lazy(exc: LearnerError) -> str | None:
    """The relationship a raiseload refused ('Invoice.lines'), if that is what failed."""
    found = re.search(r"'(\w+\.\w+)' is not available due to lazy='raise", str(exc.__cause__))
    return found[1] if found else None


def _through_awaitable_attrs(exc: BaseException | None) -> bool:
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "greenlet_spawn":  # how awaitable_attrs runs a load
            return True
        tb = tb.tb_next
    return False


def _pasted(recorder: StatementCounter, *values: Any) -> bool:
    """Whether a value (an id, a name) is written inside the text of some statement."""
    needles = [str(v).casefold() for v in values if len(str(v)) > 1]
    return any(n in s.casefold() for n in needles for s in recorder.statements)


def _fstring(value: Any, bind: str) -> Wrong:
    return Wrong(f"{value!r} is written inside the text of your SQL: the query was built with an "
                 "f-string (or +, or format). Never put values in SQL text, not in text() either: "
                 f"{bind}.")


# --- q1: albums with their tracks in at most 2 statements ----------------------------------

async def _expected_albums(engine: AsyncEngine, artist_id: int) -> list[tuple[str, list[str]]]:
    async with AsyncSession(engine) as session:
        albums = await session.scalars(
            select(Album).where(Album.artist_id == artist_id).order_by(Album.album_id)
            .options(selectinload(Album.tracks)))
        return [(a.title, [t.name for t in a.tracks]) for a in albums]


def _album_rows(got: Any, what: str) -> list[tuple[str, list[str]]]:
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (title, [track names]) pairs, not "
                    f"{type(got).__name__}.")
    rows = []
    for item in got:
        if isinstance(item, Album):
            raise Wrong(f"{what} returned Album objects; return plain data, a list of "
                        "(album title, [track names]) pairs, built inside your function.")
        try:
            title, names = item
            rows.append((title, list(names)))
        except (TypeError, ValueError):
            raise Wrong(f"{what} should return (title, [track names]) pairs; one item is "
                        f"{item!r}.") from None
    return rows


ARTIST_CASES = [(90, "Iron Maiden"), (1, "AC/DC"), (ARTIST_ID, "the check's artist"),
                (NO_ALBUMS_ID, "an artist without albums"), (424242, "an artist that does not exist")]
Q1_FIX = "add `.options(selectinload(Album.tracks))` to the query for the albums."


async def _check_artist_albums(artist_albums) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for artist_id, who in ARTIST_CASES:
            what = f"artist_albums(session, {artist_id})"
            with _Recorder(engine) as seen:
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    try:
                        got = await _run(artist_albums, session, artist_id, what=what, fix=Q1_FIX)
                    except LearnerError:
                        if _pasted(seen, artist_id):
                            raise _fstring(artist_id, "`select(Album).where(Album.artist_id == "
                                           "artist_id)` binds it") from None
                        raise
            if _pasted(seen, artist_id):
                raise _fstring(artist_id, "`select(Album).where(Album.artist_id == artist_id)` "
                               "binds it")
            rows = _album_rows(got, what)
            expected = await _expected_albums(engine, artist_id)
            if seen.count > 2:
                raise Wrong(_too_many(what, seen.statements, len(expected)))
            if rows == expected:
                continue
            got_titles = [title for title, _ in rows]
            want_titles = [title for title, _ in expected]
            if set(got_titles) < set(want_titles) and artist_id == ARTIST_ID:
                missing = sorted(set(want_titles) - set(got_titles))
                raise Wrong(f"{what} left out the album {missing[0]!r}, which has no tracks: an "
                            "inner JOIN drops it. Load the albums, and their tracks with "
                            "selectinload (or an outer join).")
            twice = sorted({t for t in want_titles if want_titles.count(t) > 1})
            if twice and got_titles.count(twice[0]) < want_titles.count(twice[0]):
                raise Wrong(f"{what} returned {len(rows)} albums; expected {len(expected)}: two "
                            f"albums of this artist share the title {twice[0]!r}, and yours merged "
                            "them. Group by the album (its id), not by its title.")
            if len(rows) < len(expected) and set(got_titles) <= set(want_titles):
                raise Wrong(f"{what} returned {len(rows)} albums; {who} has {len(expected)}. Is "
                            "there a LIMIT, or a filter that only Chinook's data satisfies?")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right albums in the wrong order: ORDER BY album_id.")
            if [title for title, _ in rows] == want_titles:
                for (title, names), (_, want) in zip(rows, expected, strict=True):
                    if names != want:
                        same = sorted(names) == sorted(want)
                        raise Wrong(f"{what}: the tracks of {title!r} come as {names[:3]}…; "
                                    f"expected {want[:3]}…, " + (
                                        "the same tracks in track_id order (Album.tracks is "
                                        "ordered that way already)." if same else
                                        "the album's own tracks, ordered by track_id."))
            raise Wrong(f"{what} returned {got_titles[:3]}…; expected {want_titles[:3]}…, the "
                        "albums of that artist by album_id.")
        return ("5 artists (an album without tracks, two albums with one title, an unknown id "
                "included), at most 2 statements each, on SQLite and PostgreSQL.")

    return await _on_both("q1", body)


def _from(statement: str) -> str:
    found = re.search(r'\bFROM\s+"?(\w+)', statement, re.IGNORECASE)
    return found[1] if found else statement.split(None, 1)[0].upper()


def _too_many(what: str, statements: list[str], albums: int) -> str:
    """Name the N+1 problem only when the statements show it: one more, alike, per album."""
    if albums >= 2 and len(statements) == albums + 1 and len(set(statements[1:])) == 1:
        return (f"{what} ran {len(statements)} statements for {albums} albums: one for the albums, "
                f"then the same query on `{_from(statements[1])}` once per album. That is the N+1 "
                f"problem (awaitable_attrs in a loop does it too). Ask for all the tracks at once: {Q1_FIX}")
    tables = ", ".join(_from(s) for s in statements[:6]) + ("…" if len(statements) > 6 else "")
    return (f"{what} ran {len(statements)} statements (on {tables}) for {albums} albums; at most "
            "2 are allowed: one for the albums, one for all their tracks. A separate query for "
            "the artist, or for some albums' tracks, goes over. Filter the albums by "
            f"Album.artist_id, and {Q1_FIX}")


q1 = Exercise(
    "q1", "artist_albums", _check_artist_albums, limit=LIMIT,
    hints=["Two statements are enough: one for the albums, one for all their tracks.",
           "`select(Album).where(Album.artist_id == artist_id).order_by(Album.album_id)"
           ".options(selectinload(Album.tracks))`; Album.tracks is already ordered by track_id.",
           "`albums = await session.scalars(stmt)`, then `return [(a.title, [t.name for t in "
           "a.tracks]) for a in albums]`."],
    title="Albums with their tracks, in two statements",
)


# --- q2: a report that is one aggregate query -----------------------------------------------

async def _expected_revenue(engine: AsyncEngine, country: str) -> list[tuple[str, Decimal]]:
    revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    stmt = (select(Genre.name, revenue)
            .join(Track, Track.genre_id == Genre.genre_id)
            .join(InvoiceLine, InvoiceLine.track_id == Track.track_id)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
            .where(Invoice.billing_country == country)
            .group_by(Genre.genre_id, Genre.name)
            .order_by(revenue.desc(), Genre.name))
    async with AsyncSession(engine) as session:
        return [(name, Decimal(total)) for name, total in (await session.execute(stmt)).all()]


def _cents(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None


def _revenue_rows(got: Any, what: str) -> list[tuple[Any, Decimal | None]]:
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (genre, revenue) rows, not {type(got).__name__}.")
    try:
        pairs = [(name, total) for name, total in got]
    except (TypeError, ValueError):
        raise Wrong(f"{what} should return (genre, revenue) pairs; one item is {got[0]!r}.") from None
    for name, total in pairs:
        if not isinstance(total, Decimal):
            raise Wrong(f"{what} gives {name!r} a revenue of {total!r}, a {type(total).__name__}; "
                        "the exercise promises a Decimal, exact to the cent (a float is not, even "
                        "rounded). Keep what func.sum() over the Numeric columns returns, with "
                        "select(); text() on SQLite hands back floats.")
    return [(name, _cents(total)) for name, total in pairs]


COUNTRY_CASES = ["USA", COUNTRY, "Brazil", "x' OR '1'='1", "Atlantis", ""]
Q2_FIX = ("select(Genre.name, func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)) joined to "
          "Track, InvoiceLine and Invoice, with .group_by(Genre.genre_id, Genre.name)")


async def _check_genre_revenue(genre_revenue) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for country in COUNTRY_CASES:
            what = f"genre_revenue(session, {country!r})"
            with _Recorder(engine) as seen:
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    try:
                        got = await _run(genre_revenue, session, country, what=what,
                                         fix="leave the objects alone and aggregate in SQL.")
                    except LearnerError as exc:
                        if _pasted(seen, country) or "'" in country:
                            raise Wrong(f"the quote in {country!r} broke your query ({exc}): the "
                                        "country was pasted into the SQL. Bind it: "
                                        "`.where(Invoice.billing_country == country)`.") from None
                        raise
            if _pasted(seen, country):
                raise _fstring(country, "`.where(Invoice.billing_country == country)` binds it")
            if seen.count != 1:
                raise Wrong(f"{what} ran {seen.count} statements. A report is one aggregate "
                            "query: let the database join and sum, and fetch one row per genre: "
                            f"{Q2_FIX}.")
            if not re.search(r"\bGROUP\s+BY\b", seen.statements[0], re.IGNORECASE):
                raise Wrong(f"{what} fetched the invoice lines and added them up in Python. Let "
                            f"the database do it, and send back one row per genre: {Q2_FIX}.")
            rows = _revenue_rows(got, what)
            expected = [(name, _cents(total)) for name, total in await _expected_revenue(engine, country)]
            if rows == expected:
                continue
            if country == COUNTRY:
                _explain_revenue(what, rows, expected)
            if sorted(rows, key=str) == sorted(expected, key=str):
                if [total for _, total in rows] == [total for _, total in expected]:
                    raise Wrong(f"{what} breaks ties another way: genres with the same revenue "
                                "go by genre name (ORDER BY revenue DESC, Genre.name).")
                raise Wrong(f"{what} has the right totals in the wrong order: biggest revenue "
                            "first, then by genre name.")
            if sorted((name for name, _ in rows), key=str) == sorted((name for name, _ in expected), key=str):
                raise Wrong(_sums_differ(what, rows, expected))
            raise Wrong(_rows_differ(what, rows, expected, "row"))
        return (f"one GROUP BY query per call; quantities, discounted prices, billing country and "
                f"the tie in {COUNTRY!r} right, on SQLite and PostgreSQL.")

    return await _on_both("q2", body)


def _sums_differ(what: str, got: list, want: list) -> str:
    """The right genres with other sums: name the first sums that differ, and the fix."""
    wanted = dict(want)
    off = [(name, total, wanted[name]) for name, total in got if total != wanted[name]]
    shown = "; ".join(f"{name!r} {total}, expected {right}" for name, total, right in off[:3])
    return (f"{what} has the right genres, but the sums differ: {shown}"
            + (f", and {len(off) - 3} more" if len(off) > 3 else "") + ". A genre's revenue is "
            "the sum, over its invoice lines, of each line's `InvoiceLine.unit_price * "
            "InvoiceLine.quantity` (the price paid, times how many): "
            "`func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)`.")


def _rows_differ(what: str, got: list, want: list, noun: str) -> str:
    """Name the rows that are extra and missing, rather than print two lists that may start alike."""
    extra = [row for row in got if row not in want]
    missing = [row for row in want if row not in got]
    parts = [f"{what} returned {len(got)} {noun}s; expected {len(want)}."]
    if extra:
        parts.append(f"Not expected: {', '.join(map(repr, extra[:3]))}"
                     + (f" and {len(extra) - 3} more." if len(extra) > 3 else "."))
    if missing:
        parts.append(f"Missing: {', '.join(map(repr, missing[:3]))}"
                     + (f" and {len(missing) - 3} more." if len(missing) > 3 else "."))
    if noun == "row" and any(row[0] is None for row in extra):
        parts.append("A row with no genre name comes from tracks that have no genre: an outer "
                     "join keeps them, but their money is no genre's revenue. Join Genre with a "
                     "plain (inner) join.")
    if noun == "line" and any(row[1] is None for row in missing):
        parts.append("The missing line is a track without an album: an inner join to Album drops "
                     "it. Join Album with an outer join, or read line.track.album and write None "
                     "when it is None.")
    return " ".join(parts)


def _explain_revenue(what: str, rows: list, expected: list) -> None:
    """The check's invoice tells apart the mistakes that Chinook's own data hides."""
    got = dict(rows)
    if not rows:
        raise Wrong(f"{what} returned nothing, but one invoice is billed to {COUNTRY!r} (its "
                    "customer lives in Ireland): filter on Invoice.billing_country, not on the "
                    "customer's country.")
    if got.get(TIE_GENRE) == Decimal("0.50"):
        raise Wrong(f"{what} gives {TIE_GENRE!r} 0.50 for a line of 3 sold at 0.50: multiply by "
                    "the quantity. Every Chinook line has quantity 1, so only new data shows it.")
    if got.get(TIE_GENRE) == Decimal("0.99"):
        raise Wrong(f"{what} gives {TIE_GENRE!r} 0.99, the track's list price once, for a line "
                    "of 3 sold at 0.50: sum each line's `InvoiceLine.unit_price * "
                    "InvoiceLine.quantity`, the price paid times how many.")
    if got.get(TIE_GENRE) == Decimal("2.97"):
        raise Wrong(f"{what} gives {TIE_GENRE!r} 2.97: that is the track's list price, but the "
                    "line was sold at 0.50. Sum InvoiceLine.unit_price × quantity, the price paid.")
    if sorted(rows, key=str) == sorted(expected, key=str):
        raise Wrong(f"{what} puts the tie in the wrong order: Rock and {TIE_GENRE!r} both made "
                    f"1.50 there, and ties go by genre name (ORDER BY revenue DESC, name).")


q2 = Exercise(
    "q2", "genre_revenue", _check_genre_revenue, limit=LIMIT,
    hints=["One query: join Genre → Track → InvoiceLine → Invoice, filter on the invoice's "
           "billing country, group by genre.",
           "The money of a line is `InvoiceLine.unit_price * InvoiceLine.quantity`; sum it with "
           "func.sum, and order by that sum descending, then by Genre.name.",
           "`revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)`, then "
           "`(await session.execute(select(Genre.name, revenue).join(...)...)).all()`."],
    title="Revenue per genre, as one aggregate query",
)


# --- q3: an invoice read with no lazy load at all (checked under raiseload) ------------------

async def _expected_invoice(engine: AsyncEngine, invoice_id: int) -> Any:
    async with AsyncSession(engine) as session:
        invoice = await session.get(Invoice, invoice_id, options=[
            selectinload(Invoice.customer),
            selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
        if invoice is None:
            return None
        return (f"{invoice.customer.first_name} {invoice.customer.last_name}",
                [(line.track.name, line.track.album.title if line.track.album else None, line.quantity)
                 for line in invoice.lines])


INVOICE_CASES = [1, 98, INVOICE_ID, EMPTY_INVOICE_ID, 412, 31337]
Q3_FIX = ("load everything with the query: `selectinload(Invoice.lines)` for the collection, "
          "chained with `.joinedload(InvoiceLine.track).joinedload(Track.album)` for each line's "
          "single track and album, and `joinedload(Invoice.customer)` for the single customer.")


async def _check_invoice_detail(invoice_detail) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for invoice_id in INVOICE_CASES:
            what = f"invoice_detail(session, {invoice_id})"
            with _Recorder(engine) as seen:
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    _strict(session)
                    try:
                        got = await _run(invoice_detail, session, invoice_id, what=what, fix=Q3_FIX)
                    except LearnerError as exc:
                        _explain_invoice_error(what, exc)
                        raise
            if got is not None and not isinstance(got, tuple):
                raise Wrong(f"{what} should return a (customer name, lines) tuple, not "
                            f"{type(got).__name__}.")
            expected = await _expected_invoice(engine, invoice_id)
            if expected is None:
                if got is not None:
                    raise Wrong(f"{what}: there is no such invoice, so return None; you returned {got!r}.")
                continue
            if got is None:
                raise Wrong(f"{what} returned None, but invoice {invoice_id} exists"
                            + (" (it has no lines, and a join from the invoice to its lines "
                               "finds no row for it): return (customer name, []). None is for an id "
                               "with no invoice." if not expected[1] else
                               ": None is for an id with no invoice."))
            if seen.count > 5:
                raise Wrong(f"{what} ran {seen.count} statements for {len(expected[1])} lines: "
                            "one query per line is N+1, even written by hand. Five are enough "
                            "(invoice, customer, lines, tracks, albums): " + Q3_FIX)
            got = (got[0], [tuple(line) for line in got[1]]) if got and len(got) == 2 else got
            if got == expected:
                continue
            if got[0] != expected[0]:
                raise Wrong(f"{what}: the customer should read {expected[0]!r} (first name, "
                            f"space, last name); yours is {got[0]!r}.")
            if sorted(got[1], key=str) == sorted(expected[1], key=str):
                raise Wrong(f"{what} has the right lines in the wrong order: by invoice_line_id "
                            "(Invoice.lines is ordered that way already).")
            raise Wrong(_rows_differ(what, got[1], expected[1], "line")
                        + " Each line is (track name, album title or None, quantity).")
        return (f"{len(INVOICE_CASES)} invoices read under raiseload('*'), no lazy load, a track "
                "without album, an invoice without lines and an unknown id included, on SQLite "
                "and PostgreSQL.")

    return await _on_both("q3", body)


def _explain_invoice_error(what: str, exc: LearnerError) -> None:
    relation = _raised_lazy(exc)
    if relation and _through_awaitable_attrs(exc.__cause__):
        raise Wrong(f"{what} awaited awaitable_attrs for {relation!r}: that is a lazy load too, "
                    "one more query per object, and the check runs your function under "
                    f"raiseload('*'), which refuses every lazy load. Instead, {Q3_FIX}") from None
    if relation:
        raise Wrong(f"{what} read {relation!r}, which your query had not loaded: a lazy load "
                    "(the check runs your function under raiseload('*'), so it fails at once "
                    f"instead of with MissingGreenlet). Instead, {Q3_FIX}") from None
    if "NoResultFound" in str(exc):
        raise Wrong(f"{what}: .one() fails when no invoice has that id. Return None then: "
                    "`await session.get(...)` or `.scalar_one_or_none()` gives None.") from None
    if "NoneType" in str(exc):
        raise Wrong(f"{what}: one track of the invoice has no album (Track.album is None), and "
                    "your code read its title anyway. Write None for its album title.") from None


q3 = Exercise(
    "q3", "invoice_detail", _check_invoice_detail, limit=LIMIT,
    hints=["Every relationship you read must come with the query: the check adds raiseload('*') "
           "to your statements, so any lazy load fails at once, awaitable_attrs included.",
           "Chain loader options along the path: selectinload for the collection, joinedload "
           "for a single parent: selectinload(Invoice.lines).joinedload(InvoiceLine.track)"
           ".joinedload(Track.album); and joinedload(Invoice.customer).",
           "`invoice = await session.get(Invoice, invoice_id, options=[...])`; None when absent. "
           "Some tracks have no album: write None for the title then."],
    title="An invoice with no lazy load",
)


# --- q4: keyset pagination ------------------------------------------------------------------

async def _expected_listing(engine: AsyncEngine) -> list[tuple[str, int]]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(Track.name, Track.track_id).order_by(Track.name, Track.track_id))
        return [tuple(row) for row in rows]


async def _expected_page(engine: AsyncEngine, after: Any, size: int) -> list[tuple[str, int]]:
    stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id).limit(size)
    if after is not None:
        stmt = stmt.where(tuple_(Track.name, Track.track_id) > tuple_(*after))
    async with AsyncSession(engine) as session:
        return [tuple(row) for row in await session.execute(stmt)]


COMPUTED = -1  # an OFFSET the database computes (a subquery, an expression)


def _offset_value(statement: str, parameters: Any) -> int | None:
    """The OFFSET a statement asked for, read from its text and its bound parameters: also
    SQLite's `LIMIT skip, size`; COMPUTED when the database works it out itself."""
    found = (re.search(r"\bOFFSET\s+(\S+)", statement, re.IGNORECASE)
             or re.search(r"\bLIMIT\s+([^\s,]+)\s*,", statement, re.IGNORECASE))
    if not found:
        return None
    mark = found[1].rstrip(")")
    numbered = re.fullmatch(r"\$(\d+)(::\w+)?", mark)
    try:
        if mark.isdigit():
            return int(mark)
        if mark == "?":
            return int(parameters[statement[: found.start(1)].count("?")])
        if numbered:
            return int(parameters[int(numbered[1]) - 1])
        if re.fullmatch(r"%\(\w+\)s|:\w+", mark):
            return int(parameters[mark.strip(":%()s")])
    except (IndexError, KeyError, TypeError, ValueError):
        return 1  # an OFFSET we cannot read: treat it as one
    return COMPUTED


PAGE_STARTS = [None, ("Intro", 900121), ("Let's Get It Up", 3), ("O'Brien", 900130), ("M", 0),
               ("x' OR '1'='1", 0)]


async def _page(tracks_page, engine: AsyncEngine, after: Any, size: int) -> tuple[list, _Recorder]:
    what = f"tracks_page(session, {after!r}, {size})"
    with _Recorder(engine) as seen:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            try:
                got = await _run(tracks_page, session, after, size, what=what, fix="")
            except LearnerError as exc:
                if after and ("'" in after[0] and "syntax" in str(exc).lower() or _pasted(seen, after[0])):
                    raise Wrong(f"{what} broke on the quote in {after[0]!r} ({exc}): the name was "
                                "pasted into the SQL. Bind it: `tuple_(Track.name, Track.track_id) "
                                "> tuple_(name, track_id)` or `Track.name > name`.") from None
                raise
    if after and _pasted(seen, after[0]):
        raise _fstring(after[0], "compare columns with Python values in select()")
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (name, track_id) rows, not {type(got).__name__}.")
    try:
        rows = [(name, track_id) for name, track_id in got]
    except (TypeError, ValueError):
        raise Wrong(f"{what} should return (name, track_id) rows; one item is {got[0]!r}.") from None
    for statement, parameters in zip(seen.statements, seen.parameters, strict=True):
        offset = _offset_value(statement, parameters)
        if offset:
            sent = ("an OFFSET computed in the SQL itself (a subquery or an expression)"
                    if offset == COMPUTED else f"OFFSET {offset}")
            raise Wrong(f"{what} sent {sent}: the database reads and throws away every row "
                        "before the page to skip it, more for every page further on. Keyset "
                        "pagination starts after the last key instead: WHERE (name, track_id) > "
                        "(last name, last id) … LIMIT size.")
    if seen.count != 1:
        raise Wrong(f"{what} ran {seen.count} statements; one page is one query, WHERE … ORDER "
                    "BY … LIMIT.")
    if not re.search(r"\bLIMIT\b|\bFETCH\s+FIRST\b", seen.statements[0], re.IGNORECASE):
        raise Wrong(f"{what} fetched the whole table and cut the page in Python. Let the "
                    "database stop after `size` rows: `.limit(size)`.")
    return rows, seen


async def _check_tracks_page(tracks_page) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        listing = await _expected_listing(engine)
        # walk the whole listing, page by page
        after, walked, pages, seen_pages = None, [], 0, []
        while True:
            rows, _ = await _page(tracks_page, engine, after, 500)
            pages += 1
            seen_pages.append((after, rows))
            if not rows or pages > len(listing) // 500 + 2:
                break
            walked += rows
            after = rows[-1]
        if walked != listing:
            # one more page, after a key whose name other tracks share, tells the causes apart
            twin = _probe_key(walked, listing)
            rows, _ = await _page(tracks_page, engine, twin, 3)
            seen_pages.insert(0, (twin, rows))
            _explain_walk(walked, listing, seen_pages)
        for start in PAGE_STARTS:
            for size in (7, 1):
                rows, _ = await _page(tracks_page, engine, start, size)
                expected = await _expected_page(engine, start, size)
                if rows != expected:
                    raise Wrong(f"tracks_page(session, {start!r}, {size}) returned {rows}; expected "
                                f"{expected}: the next {size} row(s) after that key, in (name, "
                                "track_id) order.")
        return (f"{len(listing)} tracks walked in {pages} pages of 500, no OFFSET, one statement per "
                "page; names with quotes and tracks that share a name right, on SQLite and PostgreSQL.")

    return await _on_both("q4", body)


def _probe_key(walked: list, listing: list) -> tuple[str, int]:
    """The key to ask one more page after: the first of the tracks that share the name of the
    first track the walk skipped, or else the first key whose name the next track shares."""
    given = set(walked)
    missing = next((key for key in listing if key not in given), None)
    if missing is not None:
        group = [key for key in listing if key[0] == missing[0]]
        if len(group) > 1:
            return group[0]
    return next(key for i, key in enumerate(listing[1:], 1) if listing[i - 1][0] == key[0])


def _explain_walk(walked: list, listing: list, pages: list[tuple[Any, list]]) -> None:
    if len(walked) > len(listing) or len(set(walked)) < len(walked):
        _explain_repeat(walked, listing, pages)
    missing = [key for key in listing if key not in set(walked)]
    if missing:
        twin = [key for key in listing if key[0] == missing[0][0]]
        if len(twin) > 1:
            probe = next((rows for after, rows in pages if after == twin[0]), [])
            let_through = next((row for row in probe if row[0] == twin[0][0]), None)
            if let_through is not None:
                raise Wrong(f"walking the pages skipped {missing[0]}, which shares its name with "
                            f"{len(twin) - 1} other track(s). Your WHERE lets same-named tracks "
                            f"through (the page after {twin[0]} gave {let_through}), so the skip "
                            "came from the order: tracks with the same name came back in no set "
                            "order, a page ended on one of them, and the next page started after "
                            "it. ORDER BY Track.name, Track.track_id: the whole key, as in the WHERE.")
            raise Wrong(f"walking the pages skipped {missing[0]}: it shares its name with "
                        f"{len(twin) - 1} other track(s), and the page after {twin[0]} gave none "
                        "of them. Compare the whole key, (name, track_id), not the name alone: "
                        "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
        raise Wrong(f"walking the pages skipped {missing[0]} and {len(missing) - 1} more: "
                    "order by (name, track_id) and start after the last key.")
    place = {key: i for i, key in enumerate(listing)}
    first, second = next((a, b) for a, b in zip(walked, walked[1:], strict=False) if place[a] > place[b])
    if first[0] == second[0]:
        raise Wrong(f"walking the pages gave every track, but {first} came before {second}: "
                    "tracks with the same name came back in no set order. ORDER BY Track.name, "
                    "Track.track_id, the same key that starts the next page.")
    raise Wrong(f"walking the pages gave every track, but not in (name, track_id) order ({first} "
                f"came before {second}): ORDER BY Track.name, Track.track_id, the same key that "
                "starts the next page.")


def _explain_repeat(walked: list, listing: list, pages: list[tuple[Any, list]]) -> None:
    """Say what the pages that came back showed: the last key itself again (>= for >), or a
    same-named track with a smaller id (a key without track_id)."""
    place = {key: i for i, key in enumerate(listing)}
    for after, rows in pages:
        known = [row for row in rows if row in place]
        for first, second in zip(known, known[1:], strict=False):
            if place[first] > place[second] and first[0] == second[0]:
                raise Wrong(f"walking the pages repeated tracks, and the page after {after} "
                            f"listed {first} before {second}: tracks with the same name came "
                            "back in no set order, so a page could end on one of them and the "
                            "next page start before another it had already given. ORDER BY "
                            "Track.name, Track.track_id: the whole key, as in the WHERE.")
            if place[first] > place[second]:
                raise Wrong(f"walking the pages repeated tracks, and the page after {after} "
                            f"listed {first} before {second}: not in (name, track_id) order. "
                            "ORDER BY Track.name, Track.track_id.")
    for after, rows in pages:
        if after is None or after not in place:
            continue
        back = [row for row in rows if row in place and place[row] < place[after] and row[0] != after[0]]
        if back:
            raise Wrong(f"walking the pages repeated tracks: the page after {after} came back to "
                        f"{back[0]}, whose name sorts before {after[0]!r}. The WHERE let through "
                        "tracks that come before the key in (name, track_id) order; likely it "
                        "compares track_id alone. Compare the whole key: "
                        "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
    itself = None
    for after, rows in pages:
        if after is None or after not in place:
            continue
        for row in rows:
            if row not in place or place[row] > place[after]:
                continue
            if row[0] == after[0] and row != after:
                raise Wrong(f"walking the pages repeated tracks: the page after {after} came back "
                            f"to {row}, a track with the same name and a smaller track_id, so the "
                            "comparison looked at the name alone. Compare the whole key, strictly after it: "
                            "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
            if row == after and itself is None:
                itself = after
    if itself is not None:
        raise Wrong(f"walking the pages repeated tracks: the page after {itself} began with that "
                    "key itself. Start strictly after the last key (>, not >=): "
                    "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
    repeated = next(key for i, key in enumerate(walked) if key in walked[:i])
    raise Wrong(f"walking the pages repeated {repeated}: some page went back to rows an earlier "
                "page had given. Order by (name, track_id) and start strictly after the last key: "
                "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")


q4 = Exercise(
    "q4", "tracks_page", _check_tracks_page, limit=LIMIT,
    hints=["Sort by (name, track_id): the id breaks ties between tracks with the same name, so "
           "every track has one place in the listing.",
           "The next page starts after the last key you returned: `tuple_(Track.name, "
           "Track.track_id) > tuple_(*after)`, without OFFSET.",
           "`stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id)"
           ".limit(size)`; add the WHERE only when `after` is not None; return "
           "`[tuple(r) for r in await session.execute(stmt)]`."],
    title="Keyset pagination",
)


# --- q5: reading relationships with awaitable_attrs ------------------------------------------

TRACK_CASES = [1, 900140, 900141, 63, 900130]
Q5_FIX = "`album = await track.awaitable_attrs.album` (and the same for genre)."


async def _expected_labels(engine: AsyncEngine, track_id: int) -> tuple:
    async with AsyncSession(engine) as session:
        track = await session.get(Track, track_id, options=[selectinload(Track.album), selectinload(Track.genre)])
        return (track.name, track.album.title if track.album else None,
                track.genre.name if track.genre else None)


async def _check_track_labels(track_labels) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for track_id in TRACK_CASES:
            expected = await _expected_labels(engine, track_id)
            for preloaded in (False, True):
                options = [selectinload(Track.album), selectinload(Track.genre)] if preloaded else []
                what = f"track_labels(<Track {track_id}>)"
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    track = await session.get(Track, track_id, options=options)
                    with _Recorder(engine) as seen:
                        try:
                            got = await _run(track_labels, track, what=what, fix=f"read it with {Q5_FIX}")
                        except NeverAwaited as exc:
                            if exc.name != "greenlet_spawn":
                                raise
                            raise Wrong(f"{what}: a coroutine your code made was never awaited: "
                                        "SQLAlchemy's greenlet_spawn, which is what "
                                        "`track.awaitable_attrs.<relationship>` returns. Without "
                                        "`await` you hold that coroutine, not the related "
                                        f"object: {Q5_FIX}") from None
                        except LearnerError as exc:
                            if "NoneType" in str(exc):
                                raise Wrong(f"{what}: this track has no album or no genre "
                                            "(None), and your code read its title or name "
                                            "anyway. Return None in its place.") from None
                            raise
                if seen.peak > 1:
                    raise Wrong(f"{what} had {seen.peak} queries running at once on the track's one "
                                "session (two awaitable_attrs loads gathered, say). A session runs "
                                "one statement at a time: shared between concurrent loads, it fails "
                                "(\"concurrent operations are not permitted\") or, as here, queues "
                                "them by luck, the shared-session mistake of lesson 07. Await the "
                                f"loads one after the other: {Q5_FIX}")
                if not isinstance(got, tuple) or len(got) != 3:
                    raise Wrong(f"{what} should return a tuple (track name, album title, genre "
                                f"name); yours is {got!r}.")
                if preloaded and seen.count:
                    raise Wrong(f"{what} ran {seen.count} statement(s) for a track whose album and "
                                "genre were already loaded. awaitable_attrs returns what is "
                                "loaded without SQL; a query of your own always goes to the "
                                f"database. Use {Q5_FIX}")
                if got == expected:
                    continue
                if got[1] is None and expected[1] is not None or got[2] is None and expected[2] is not None:
                    raise Wrong(f"{what} returned None for a relationship the track has: {got!r}, "
                                f"expected {expected!r}. Was an error caught and hidden?")
                if any(g == "" and e is None for g, e in zip(got[1:], expected[1:], strict=True)):
                    raise Wrong(f"{what} returned {got!r}; expected {expected!r}. A track with no "
                                "album (or no genre) gives None in that place, not an empty "
                                "string: `album.title if album else None`.")
                raise Wrong(f"{what} returned {got!r}; expected {expected!r}. Read the names from "
                            "the related objects: `(await track.awaitable_attrs.album).title`.")
        return ("5 tracks, with and without album or genre, loaded and not, read with no SQL when "
                "already loaded, on SQLite and PostgreSQL.")

    return await _on_both("q5", body)


q5 = Exercise(
    "q5", "track_labels", _check_track_labels, limit=LIMIT,
    hints=["`track.album` would be a lazy load, which fails in async code; "
           "`await track.awaitable_attrs.album` runs it properly.",
           "A track may have no album or no genre: the attribute is then None, and so is the name "
           "you return.",
           "`album = await track.awaitable_attrs.album`, `genre = await track.awaitable_attrs.genre`, "
           "then `return (track.name, album.title if album else None, genre.name if genre else None)`."],
    title="Reading relationships with awaitable_attrs",
)
