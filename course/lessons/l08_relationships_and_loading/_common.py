"""What the checks of lesson 08 share: the rows they add, and running the learner's code."""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidRequestError, MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import raiseload

from course.checking.backends import on_each_backend
from course.checking.checks import LearnerError, NeverAwaited, Wrong, call
from course.checking.events import Hook, listen_all, remove_all
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


async def _seeded(engine: AsyncEngine) -> None:
    """The check's rows, added to a fresh Chinook copy."""
    async with async_sessionmaker(engine)() as session, session.begin():
        session.add_all(_seed_rows())


async def on_both(name: str, body: Callable[[AsyncEngine, str], Awaitable[str]]) -> str:
    """Run body on SQLite, then PostgreSQL (most wrong answers are caught on the first), each a
    fresh Chinook copy with the check's rows; the remark of the last run."""
    return await on_each_backend(f"check_08_{name}", body, prepare=_seeded)


class Recorder(StatementCounter):
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

    def _hooks(self) -> list[Hook]:
        return [(self.engine, "after_cursor_execute", self._done), (self.engine, "handle_error", self._done)]

    def __enter__(self) -> Recorder:
        super().__enter__()
        listen_all(self._hooks())
        return self

    def __exit__(self, *exc: object) -> None:
        remove_all(self._hooks())
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


def _lazy_table(exc: BaseException | None) -> str:
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


async def run(fn: Any, *args: Any, what: str, fix: str) -> Any:
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


async def in_session(engine: AsyncEngine, fn: Any, *args: Any, what: str, fix: str,
                     explain: Callable[[LearnerError, Recorder], None] | None = None,
                     under_raiseload: bool = False) -> tuple[Any, Recorder]:
    """fn(session, *args) on a new AsyncSession, with run(); its statements recorded. `explain`
    may turn the learner's error into a plainer Wrong (it raises), else the error goes on."""
    with Recorder(engine) as seen:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            if under_raiseload:
                strict(session)
            try:
                got = await run(fn, session, *args, what=what, fix=fix)
            except LearnerError as exc:
                if explain is not None:
                    explain(exc, seen)
                raise
    return got, seen


def strict(session: AsyncSession) -> None:
    """Make every lazy load in this session raise at once: raiseload('*') on each ORM select."""
    @event.listens_for(session.sync_session, "do_orm_execute")
    def _no_lazy(state: Any) -> None:
        if state.is_select:
            state.statement = state.statement.options(raiseload("*"))


def raised_lazy(exc: LearnerError) -> str | None:
    """The relationship a raiseload refused ('Invoice.lines'), if that is what failed."""
    found = re.search(r"'(\w+\.\w+)' is not available due to lazy='raise", str(exc.__cause__))
    return found[1] if found else None


def through_awaitable_attrs(exc: BaseException | None) -> bool:
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "greenlet_spawn":  # how awaitable_attrs runs a load
            return True
        tb = tb.tb_next
    return False


def pasted(recorder: StatementCounter, *values: Any) -> bool:
    """Whether a value (an id, a name) is written inside the text of some statement."""
    needles = [str(v).casefold() for v in values if len(str(v)) > 1]
    return any(n in s.casefold() for n in needles for s in recorder.statements)


def fstring(value: Any, bind: str) -> Wrong:
    return Wrong(f"{value!r} is written inside the text of your SQL: the query was built with an "
                 "f-string (or +, or format). Never put values in SQL text, not in text() either: "
                 f"{bind}.")

def rows_differ(what: str, got: list, want: list, noun: str) -> str:
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
