"""Checks for exercises/03-aiosqlite-workbook.ipynb."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import re
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from course.checking.checks import Exercise, LearnerError, Wrong, call, must_raise
from course.checking.top_n import no_track_counted_as_one
from course.db.sqlite import fresh_sqlite
from course.probes import HOSTILE_INPUTS, InjectedFailure, ListThatBreaks

WORKER = "_connection_worker_thread"  # the name aiosqlite 0.22 gives each connection's thread

FORGOT_FETCH_AWAIT = ("did you forget `await`? An aiosqlite call was used without it: execute(), "
                      "fetchone(), fetchall() and fetchmany() are coroutines, so write `cursor = "
                      "await db.execute(...)` and `rows = await cursor.fetchall()`.")
REOPENED = ("`async with db:` on a connection that is already open tries to open it again "
            "(RuntimeError: threads can only be started once), and on exit it would close it. "
            "It is not a transaction, unlike sqlite3's `with conn:`: use `await db.commit()` "
            "and `await db.rollback()`.")


@asynccontextmanager
async def _database(name: str) -> AsyncIterator[tuple[aiosqlite.Connection, aiosqlite.Connection]]:
    """A fresh Chinook copy: the connection handed to the learner, and an observer connection
    that sees only what was committed."""
    path = fresh_sqlite(name)
    db = await aiosqlite.connect(path)
    try:
        observer = await aiosqlite.connect(path)
        try:
            yield db, observer
        finally:
            await observer.close()
    finally:
        await db.close()  # a no-op if the learner's code closed it already


async def _run(fn: Any, *args: Any) -> Any:
    """call(), plus plain answers for two aiosqlite mistakes: a call without `await`, and
    `async with db:` on a connection that is already open."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the un-awaited call, once collected
        try:
            return await call(fn, *args)
        except (LearnerError, Wrong) as exc:
            text = str(exc)
            if "threads can only be started once" in text:
                message = REOPENED
            elif "was called but never awaited" in text:
                raise  # call() named the very call that lacks its await: keep that
            elif "Result' object" in text or "`await`" in text:  # aiosqlite's Result or ours
                message = FORGOT_FETCH_AWAIT
            else:
                raise
        gc.collect()
    raise Wrong(message)


def _is_closed(db: aiosqlite.Connection) -> bool:
    try:
        db.in_transaction  # noqa: B018 -- raises ValueError once the connection is closed
    except ValueError:
        return True
    return False


def _closed_given_connection() -> Wrong:
    return Wrong("your function closed the connection it was given. On an aiosqlite connection, "
                 "`async with db:` (or `await db.close()`) closes it and throws away uncommitted "
                 "work; it does not commit. The caller owns the connection: use `await "
                 "db.commit()` and leave it open.")


async def _rolled_back_if_open(db: aiosqlite.Connection) -> bool:
    """Whether the learner's code left a transaction open on the connection it was given. If it
    did, roll that back, so the check's next step starts clean. A closed connection is wrong."""
    if _is_closed(db):
        raise _closed_given_connection()
    if not db.in_transaction:
        return False
    await db.rollback()
    return True


def _rows(got: Any, what: str) -> list[tuple]:
    """The learner's rows as plain tuples, or a Wrong that says what came back instead."""
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows (what `await cursor.fetchall()` "
                    f"returns), not {type(got).__name__}.")
    try:
        return [tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows; one item is "
                    f"{type(got[0]).__name__}.") from None


# --- a connection that watches the SQL it is given (q1, q2, q4) -----------------------------

class _WatchedCursor(aiosqlite.Cursor):
    """A real aiosqlite cursor that reports each statement it runs to its _Watched connection."""

    def __init__(self, watch: _Watched, cursor: aiosqlite.Cursor) -> None:
        super().__init__(cursor._conn, cursor._cursor)  # the same sqlite3 cursor, watched
        self._watch = watch

    async def execute(self, sql: str, parameters: Any = None) -> aiosqlite.Cursor:
        self._watch.seen(sql, many=False)
        return await super().execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Any) -> aiosqlite.Cursor:
        self._watch.seen(sql, many=True)
        return await super().executemany(sql, parameters)

    async def executescript(self, sql_script: str) -> aiosqlite.Cursor:
        self._watch.seen(sql_script, many=False)
        return await super().executescript(sql_script)


class _WatchedResult:
    """What aiosqlite's execute(), executemany() and cursor() return (awaitable, or an async
    context manager that closes the cursor), with the cursor watched too."""

    def __init__(self, watch: _Watched, result: Any) -> None:
        self._watch = watch
        self._result = result
        self._cursor: _WatchedCursor | None = None

    def __await__(self) -> Generator[Any, None, _WatchedCursor]:
        cursor = yield from self._result.__await__()
        return _WatchedCursor(self._watch, cursor)

    async def __aenter__(self) -> _WatchedCursor:
        self._cursor = await self
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class _Watched:
    """Passes everything to the real connection, recording the text of every statement run
    through it or through its cursors, and whether executemany ran it."""

    _OWN = frozenset({"_db", "statements"})

    def __init__(self, db: aiosqlite.Connection) -> None:
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "statements", [])

    def seen(self, sql: Any, *, many: bool) -> None:
        self.statements.append((str(sql), many))

    def execute(self, sql: str, parameters: Any = None) -> _WatchedResult:
        self.seen(sql, many=False)
        return _WatchedResult(self, self._db.execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any) -> _WatchedResult:
        self.seen(sql, many=True)
        return _WatchedResult(self, self._db.executemany(sql, parameters))

    def executescript(self, sql_script: str) -> _WatchedResult:
        self.seen(sql_script, many=False)
        return _WatchedResult(self, self._db.executescript(sql_script))

    def cursor(self) -> _WatchedResult:
        return _WatchedResult(self, self._db.cursor())

    def execute_insert(self, sql: str, parameters: Any = None) -> Any:
        self.seen(sql, many=False)
        return self._db.execute_insert(sql, parameters)

    def execute_fetchall(self, sql: str, parameters: Any = None) -> Any:
        self.seen(sql, many=False)
        return self._db.execute_fetchall(sql, parameters)

    def touching(self, table: str) -> tuple[int, int]:
        """Statements naming `table`: (run one by one, run by executemany)."""
        hits = [many for sql, many in self.statements if table in sql.lower()]
        return hits.count(False), hits.count(True)

    def pasted(self, value: str) -> bool:
        """Whether `value` (longer than one character) appears in the text of some statement:
        the learner built the SQL from it instead of binding it."""
        needle = value.casefold()
        return len(value) > 1 and any(needle in sql.casefold() for sql, _ in self.statements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._db, name, value)  # row_factory and the like belong to the connection


def _pasted_into_sql(what: str, value: str, bind: str) -> Wrong:
    return Wrong(f"{what}: {value!r} is inside the text of your SQL, so it was pasted into the "
                 "query. Never build SQL with f-strings or +, not even with its quotes doubled "
                 "or escaped by hand: one missed case and the input is SQL again. Bind it: "
                 f"{bind}.")


# --- q1: a search that survives any input -------------------------------------------------

SEARCH_SQL = """
    SELECT track_id, name FROM track
    WHERE instr(lower(name), lower(?)) > 0
    ORDER BY track_id
"""
# Four track names hold a backslash ("Cavalleria Rusticana \ Act \ Intermezzo Sinfonico"). With
# `ESCAPE '\'`, a backslash left unescaped in the text escapes the character after it instead.
SEARCH_CASES = ["love", "LOVE", "don't", *HOSTILE_INPUTS, "100%", "Act \\ Intermezzo", " ", "Love ", ""]
# A covering index on (name, track_id): a query without ORDER BY then returns rows in name
# order, not in the track_id order a plain table scan happens to give.
NAME_ORDER_INDEX = "CREATE INDEX check_track_name ON track (name, track_id)"


async def _random_search(observer: aiosqlite.Connection) -> str:
    """A piece of a random track name, in a random case: a search beyond the fixed cases. ASCII
    only, since the statement asks for ASCII case only."""
    rows = await observer.execute_fetchall("SELECT name FROM track ORDER BY random() LIMIT 50")
    names = [r[0] for r in rows if r[0].isascii() and len(r[0]) >= 6]
    name = names[0] if names else "Breaking The Rules"
    start = random.randrange(0, len(name) - 4)
    piece = name[start:start + random.randint(4, min(10, len(name) - start))]
    return "".join(c.upper() if random.random() < 0.5 else c.lower() for c in piece)
BIND_TEXT = "write `?` in the SQL and pass the text in the parameters, `await db.execute(sql, (pattern,))`"


async def _check_search_tracks(search_tracks) -> str:
    async with _database("check-03-q1") as (db, observer):
        await db.execute(NAME_ORDER_INDEX)
        await db.commit()
        for text in [*SEARCH_CASES, await _random_search(observer)]:
            what = f"search_tracks(db, {text!r})"
            watch = _Watched(db)
            try:
                got = await _run(search_tracks, watch, text)
            except LearnerError as exc:
                if watch.pasted(text):
                    raise _pasted_into_sql(what, text, BIND_TEXT) from None
                if "'" in text:
                    raise Wrong(f"the quote in {text!r} broke your query ({exc}): the text "
                                "became part of the SQL. Never build SQL with f-strings; write "
                                "`LIKE ?` and pass the text in the parameters.") from None
                raise
            if watch.pasted(text):
                raise _pasted_into_sql(what, text, BIND_TEXT)
            rows = _rows(got, what)
            expected = [tuple(r) for r in await observer.execute_fetchall(SEARCH_SQL, (text,))]
            if await observer.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE name = 'track'") == []:
                raise Wrong(f"{what} dropped the track table: the text ran as SQL. Bind it as a "
                            "parameter (`?`) instead of formatting it into the query.")
            if rows == expected:
                continue
            if text == "" and not rows:
                raise Wrong(f"{what} returned no tracks; every name contains the empty text, so "
                            f"expected all {len(expected)}. Search for the text as it is given, "
                            "even empty (`if not text: return []` tests truthiness).")
            if rows and len(rows[0]) != 2:
                raise Wrong(f"each row should have 2 columns (track_id, name); yours have "
                            f"{len(rows[0])}.")
            if ("%" in text or "_" in text) and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks, but only {len(expected)} track "
                            f"name(s) contain {text!r}: % and _ are LIKE wildcards. Escape them in the "
                            "text (`\\%`, `\\_`) and add `ESCAPE '\\'`, or use instr().")
            if "\\" in text:
                raise Wrong(f"{what} returned {len(rows)} tracks; expected {len(expected)}, "
                            f"starting with {expected[0]}. With `ESCAPE '\\'`, the backslash is "
                            "the escape character: a backslash typed by the user escapes the "
                            "character after it. Escape it first (`\\` becomes `\\\\`), then "
                            "`%` and `_`; or use instr().")
            if "'" in text and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks instead of {len(expected)}: the "
                            "text with its quote did not stay one plain value. If it went into the "
                            "SQL, even escaped, the input can rewrite the query (SQL injection): "
                            "bind it with `?` and pass it in the parameters.")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right tracks in the wrong order: ORDER BY track_id.")
            if text != text.strip() and rows == [tuple(r) for r in await observer.execute_fetchall(
                    SEARCH_SQL, (text.strip(),))]:
                raise Wrong(f"{what} returned {len(rows)} tracks, those that contain "
                            f"{text.strip()!r}; expected the {len(expected)} that contain "
                            f"{text!r}, spaces included. Search for the text as it is given: "
                            "don't strip() it.")
            if set(rows) < set(expected) and all(text in str(r[1]) for r in rows):
                raise Wrong(f"{what} returned only the {len(rows)} names that match its case; "
                            f"expected {len(expected)}: the search must ignore case. LIKE already "
                            "does (for ASCII); with instr(), compare lower(name) with lower(?).")
            raise Wrong(f"{what} returned {len(rows)} tracks; expected {len(expected)}"
                        + (f", starting with {expected[0]}." if expected else "."))
    return (f"{len(SEARCH_CASES) + 1} searches (a random one and spaces included), hostile ones "
            "too, all treated as plain text.")


q1 = Exercise(
    "q1", "search_tracks", _check_search_tracks,
    hints=["Put a `?` where the text goes and pass the value separately: "
           "`await db.execute(sql, (pattern,))`. Then quotes are just characters.",
           "For 'contains', the pattern is '%' + text + '%'. But a % or _ typed by the user is a "
           "wildcard too: replace `\\` by `\\\\`, `%` by `\\%` and `_` by `\\_` first, and end "
           "the SQL with `LIKE ? ESCAPE '\\'`.",
           "`SELECT track_id, name FROM track WHERE name LIKE ? ESCAPE '\\' ORDER BY track_id`, "
           "then `return await cursor.fetchall()` (or use `await db.execute_fetchall(sql, "
           "params)`). LIKE ignores ASCII case."],
    title="Search track names, safely",
)


# --- q2: the top-N artists by number of tracks --------------------------------------------

TOP_ARTISTS_SQL = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
    ORDER BY tracks DESC, ar.name
    LIMIT ?
"""


# In Chinook, every tie near the top has its artist ids in the same order as its names (Deep
# Purple, id 58, and Lost, id 149, both have 92 tracks), so ties broken by id, or not at all,
# would pass. The check renames artist 58 in its own copy so that the two orders disagree.
RENAME = ("Purple, Deep", 58)
TOP_BY_ID_SQL = TOP_ARTISTS_SQL.replace("ORDER BY tracks DESC, ar.name", "ORDER BY tracks DESC, ar.artist_id")
BIND_N = "end the query with `LIMIT ?` and pass `(n,)` in the parameters"
# Two artists of the same name, with 24 and 20 tracks: grouped by name alone, they merge.
SAME_NAME = ("Battlestar Galactica", 158)  # was "Battlestar Galactica (Classic)"
SAME_NAME_SHOWN = SAME_NAME
EVERY_ARTIST = 1000  # more than Chinook's 275 artists: every artist with a track comes back
BY_NAME_ONLY = TOP_ARTISTS_SQL.replace("GROUP BY ar.artist_id, ar.name", "GROUP BY ar.name")


def _same_name_merged(rows: list[tuple], merged: list[tuple], what: str) -> None:
    """Raise Wrong if the rows are those of a GROUP BY on the name alone (`merged`)."""
    if rows == merged:
        name, _ = SAME_NAME_SHOWN
        raise Wrong(f"{what}: two different artists are called {name!r} (the check named them "
                    "alike), with 24 and 20 tracks, and you counted them as one artist with 44. "
                    "GROUP BY the artist's id (with its name), not by the name alone.")


def _extra_are_empty(rows: list[tuple], expected: list[tuple]) -> bool:
    """For n beyond the artists with tracks, rows after the expected ones may list artists with
    no track (a LEFT JOIN counting track ids gives them 0): accept those."""
    return (len(rows) > len(expected) and rows[:len(expected)] == expected
            and all(len(r) == 2 and r[1] == 0 for r in rows[len(expected):]))


def _number_in(sql: str, n: int) -> bool:
    return re.search(rf"(?<![\w.]){n}(?![\w.])", sql) is not None


async def _check_top_artists(top_artists) -> str:
    async with _database("check-03-q2") as (db, observer):
        await db.execute("UPDATE artist SET name = ? WHERE artist_id = ?", RENAME)
        await db.execute("UPDATE artist SET name = ? WHERE artist_id = ?", SAME_NAME)
        await db.commit()
        if (await observer.execute_fetchall(TOP_ARTISTS_SQL, (5,))
                == await observer.execute_fetchall(TOP_BY_ID_SQL, (5,))):
            raise RuntimeError("renaming artist 58 no longer makes name order and id order "
                               "disagree in the top 5: pick another tie")
        tracks_of = dict(await observer.execute_fetchall(TOP_ARTISTS_SQL, (-1,)))  # every artist
        for n in (5, 1, 12, 0, random.randint(13, 40), EVERY_ARTIST):
            what = f"top_artists(db, {n})"
            watch = _Watched(db)
            rows = _rows(await _run(top_artists, watch, n), what)
            if n >= 10 and any(_number_in(sql, n) for sql, _ in watch.statements):
                raise Wrong(f"{what}: the number {n} is inside the text of your SQL, so n was "
                            "formatted into the query. Never build SQL with f-strings, not even "
                            f"for a number: {BIND_N}.")
            expected = [tuple(r) for r in await observer.execute_fetchall(TOP_ARTISTS_SQL, (n,))]
            if n == EVERY_ARTIST and _extra_are_empty(rows, expected):
                rows = rows[:len(expected)]
            if rows == expected:
                if watch.statements and not any("limit" in sql.lower() for sql, _ in watch.statements):
                    raise Wrong(f"{what} sent no LIMIT, so the database sent back every artist. "
                                f"Let it sort and cut, so that only n rows come back: {BIND_N}.")
                continue
            if rows and len(rows[0]) != 2:
                raise Wrong("each row should have two columns: the artist's name and its number "
                            "of tracks.")
            _same_name_merged(rows, [tuple(r) for r in await observer.execute_fetchall(
                BY_NAME_ONLY, (n,))], what)
            if len(rows) != len(expected):
                if n == EVERY_ARTIST:
                    no_track_counted_as_one(rows, expected, what)
                    raise Wrong(f"{what} returned {len(rows)} rows; {len(expected)} artists have "
                                "tracks, and there are fewer than n: return each of them once "
                                "(an artist without a track may come last, with 0).")
                raise Wrong(f"{what} returned {len(rows)} rows; expected {n}. Pass n itself "
                            "to `LIMIT ?` (no +1 or -1).")
            differ = [i for i, (mine, theirs) in enumerate(zip(rows, expected, strict=True))
                      if mine != theirs]
            if all(tracks_of.get(rows[i][0]) == rows[i][1] == expected[i][1] for i in differ):
                i = differ[0]  # a true artist with the same count, in the wrong place: a tie
                raise Wrong(f"{what}: row {i + 1} should be {expected[i]}, not {rows[i]}. Both "
                            f"artists have {expected[i][1]} tracks, and ties must be broken by "
                            "name, A before Z: ORDER BY tracks DESC, then the artist's name (not "
                            "its id, and not nothing). (The check renamed Deep Purple 'Purple, "
                            "Deep', so that ids and names sort differently.)")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right artists in the wrong order: most tracks first "
                            "(ORDER BY tracks DESC), then by name.")
            raise Wrong(f"{what} should start with {expected[0]}; yours starts with "
                        f"{rows[0] if rows else 'nothing'}. Count tracks per artist: join track "
                        "to album to artist and GROUP BY the artist.")
    return "Iron Maiden leads with 213 tracks; ties broken by name."


q2 = Exercise(
    "q2", "top_artists", _check_top_artists,
    hints=["Tracks belong to albums and albums to artists: join track → album → artist, then "
           "GROUP BY the artist and count(*).",
           "ORDER BY the count DESC, then by name, so ties come out the same every time.",
           "End with `LIMIT ?` and pass `(n,)`; `rows = await cursor.fetchall()` needs its await "
           "too."],
    title="The top-N artists by number of tracks",
)


# --- q3: an invoice and its lines, all or nothing -----------------------------------------

PAUSED_TRACK = 15  # the line (or playlist row) for this track makes the database wait

# The check's own failure: the database refuses to sell track 13, whatever the code does first.
REFUSE_TRACK_13 = """
    CREATE TRIGGER refuse_track_13 BEFORE INSERT ON invoice_line
    WHEN NEW.track_id = 13
    BEGIN
        SELECT RAISE(ABORT, 'track 13 is not for sale (a failure injected by the check)');
    END
"""
# And it refuses an invoice whose total is over 100, whether the total comes with the INSERT or
# with a later UPDATE: the last step fails, after every line went in.
REFUSE_BIG_TOTAL = [f"""
    CREATE TRIGGER refuse_big_total_{event.lower()} BEFORE {event} ON invoice
    WHEN NEW.total > 100
    BEGIN
        SELECT RAISE(ABORT, 'an invoice over 100 is refused (a failure injected by the check)');
    END
""" for event in ("INSERT", "UPDATE")]
GOOD_LINES = [(1, 2), (2819, 1), (3, 1)]  # 0.99 × 2 + 1.99 + 0.99
GOOD_TOTAL = 4.96
FAILING_LINES = [(5, 1), (13, 1), (6, 1)]
MISSING_LINES = [(7, 1), (999_999, 1)]
COSTLY_LINES = [(1, 2), (3, 200)]  # 0.99 × 202: refused when the total is set
PAUSED_LINES = [(8, 1), (PAUSED_TRACK, 2), (9, 1)]  # cancelled while track 15's line goes in


class _Pause:
    """Makes a statement wait inside the database, so that the check can cancel the learner's
    call while its transaction is open, as a timeout would. A trigger on `table` calls
    course_pause() for track 15: that function (run in aiosqlite's worker thread) tells the
    loop it has started, then waits until the check releases it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = threading.Event()
        self.entered = threading.Event()
        self._loop = asyncio.get_running_loop()

    def _pause(self) -> int:
        self._loop.call_soon_threadsafe(self.started.set)
        self.release.wait(5)  # bounded: the check releases it at once after cancelling
        return 0

    def progress(self) -> int:
        """A sqlite3 progress handler: the first statement to run pauses, once."""
        if not self.entered.is_set():
            self.entered.set()
            self._pause()
        return 0  # go on

    async def install(self, db: aiosqlite.Connection, table: str) -> None:
        await db.create_function("course_pause", 0, self._pause)
        await db.execute(f"""
            CREATE TRIGGER pause_on_track_{PAUSED_TRACK} BEFORE INSERT ON {table}
            WHEN NEW.track_id = {PAUSED_TRACK}
            BEGIN SELECT course_pause(); END
        """)  # the table name is a constant of the check
        await db.commit()

    async def cancel_midway(self, db: aiosqlite.Connection, fn: Any, *args: Any) -> BaseException | Any:
        """Run fn(db, *args), cancel it while the database waits on track 15's row, and return
        what came out: the CancelledError, another exception, or the value it returned."""
        self.started.clear()
        self.release.clear()
        task = asyncio.ensure_future(_run(fn, db, *args))
        try:
            waiter = asyncio.ensure_future(self.started.wait())
            try:
                await asyncio.wait([task, waiter], timeout=5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if self.started.is_set():
                task.cancel()
        finally:
            self.release.set()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        if not _is_closed(db):
            await db.execute("SELECT 1")  # queued behind the learner's statements: they are done
        return outcome


def _after_cancel(outcome: Any, pause: _Pause, what: str) -> None:
    """The cancellation must have reached the caller of `what`."""
    if isinstance(outcome, Wrong | LearnerError) and pause.started.is_set():
        if isinstance(outcome, LearnerError):
            raise Wrong(f"cancelled while its statement ran, {what} raised {outcome} instead of "
                        "letting CancelledError through: after rolling back, re-raise it with a "
                        "bare `raise`.")
        raise outcome
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not pause.started.is_set():
        raise Wrong(f"{what} finished without inserting the row for track {PAUSED_TRACK}: every "
                    "pair must get its row.")
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled while its statement ran (as a timeout would), {what} returned "
                    f"{outcome!r}: it swallowed the CancelledError, so the caller thinks it "
                    "worked. Roll back, then re-raise it: `except BaseException: await "
                    "db.rollback(); raise`.")


async def _counts(observer: aiosqlite.Connection, *tables: str) -> tuple[int, ...]:
    counts = []
    for table in tables:  # names from the fixed list above, never from input
        async with observer.execute(f"SELECT count(*) FROM {table}") as cursor:  # noqa: S608 -- table names are constants of the check
            counts.append((await cursor.fetchone())[0])
    return tuple(counts)


async def _check_create_invoice(create_invoice) -> str:
    async with _database("check-03-q3") as (db, observer):
        for trigger in (REFUSE_TRACK_13, *REFUSE_BIG_TOTAL):
            await db.execute(trigger)
        await db.executescript(INVOICE_GAPS)
        await db.commit()
        pause = _Pause()
        await pause.install(db, "invoice_line")
        return await _invoice_cases(db, observer, create_invoice, pause)


# Invoices deleted in the middle: the ids have gaps, so count(*) + 1 is an id already taken.
INVOICE_GAPS = """
    DELETE FROM invoice_line WHERE invoice_id BETWEEN 100 AND 104;
    DELETE FROM invoice WHERE invoice_id BETWEEN 100 AND 104;
"""


def _id_taken(exc: LearnerError, table: str, column: str, what: str) -> None:
    """Raise Wrong if the learner's INSERT chose an id that is already taken."""
    cause = exc.__cause__
    if isinstance(cause, sqlite3.IntegrityError) and f"{table}.{column}" in str(cause):
        raise Wrong(f"{what}: your INSERT gave the new {table} an id that is already taken "
                    f"({cause}). Ids have gaps (rows get deleted), so an id worked out from the "
                    f"rows (count(*) + 1, say) may be in use. Leave {column} out of the INSERT, let SQLite number the row, and read "
                    "the id from cursor.lastrowid.") from None


INSERT_INVOICE = re.compile(
    r"\b(?:insert|replace)\s+(?:or\s+\w+\s+)?into\s+(?:main\s*\.\s*)?[\"`\[]?invoice[\"`\]]?"
    r"\s*(?:\(([^)]*)\))?\s*(values\s*\((.*)\)|select\b|default\b)", re.IGNORECASE | re.DOTALL)
# A read of the highest or the number of invoice ids (from invoice, not invoice_line).
IDS_READ = re.compile(r"\b(?:max|count)\s*\(.*\bfrom\s+(?:main\s*\.\s*)?[\"`\[]?invoice\b(?!_)",
                      re.IGNORECASE | re.DOTALL)
ROWID_NAMES = {"invoice_id", "rowid", "oid", "_rowid_"}


def _top_level(values: str) -> list[str]:
    """The comma-separated items of a VALUES tuple, commas inside quotes or brackets kept."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(values):
        if quote:
            quote = "" if char == quote else quote  # a doubled quote closes and reopens: fine
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(values[start:i].strip())
            start = i + 1
    return [*items, values[start:].strip()]


def _supplies_id(sql: str) -> str | None:
    """The id an INSERT INTO invoice gives the new row itself (as written in the statement that
    SQLite ran, values expanded), or None when SQLite numbers the row."""
    match = INSERT_INVOICE.search(sql)
    if match is None:
        return None
    columns, values = match.group(1), match.group(3)
    names = ([c.strip().strip('"`[]').lower() for c in columns.split(",")] if columns
             else ["invoice_id"])  # no column list: invoice_id is the table's first column
    given = [i for i, name in enumerate(names) if name in ROWID_NAMES]
    if not given:
        return None
    if values is None:  # INSERT … SELECT: the id comes from the SELECT
        return "an id from its SELECT"
    items = _top_level(values)
    value = items[given[0]] if given[0] < len(items) else ""
    return None if value.upper() == "NULL" else value


def _chose_its_id(statements: list[str], what: str) -> None:
    """Raise Wrong if the learner's code gave the new invoice an id of its own choosing."""
    read = None
    for sql in statements:
        supplied = _supplies_id(sql)
        if supplied is not None:
            seen = (f" after reading `{' '.join(read.split())}`" if read else "")
            raise Wrong(f"{what}: your INSERT gave the new invoice its invoice_id itself "
                        f"({supplied}){seen}. An id worked out from the rows (max + 1, count + 1) "
                        "is the same for two writers that read before either inserts, so one of "
                        "them fails or both get one number. Leave invoice_id out of the INSERT "
                        "and let SQLite number the row: take the id from `cursor.lastrowid` (or "
                        "`RETURNING invoice_id`).")
        if INSERT_INVOICE.search(sql):
            return
        if read is None and IDS_READ.search(sql):
            read = sql


async def _new_invoices(observer: aiosqlite.Connection, after: int) -> list[int]:
    rows = await observer.execute_fetchall(
        "SELECT invoice_id FROM invoice WHERE invoice_id > ? ORDER BY invoice_id", (after,))
    return [r[0] for r in rows]


async def _random_lines(observer: aiosqlite.Connection) -> list[tuple[int, int]]:
    """Two to four tracks of Chinook, ids far apart, each with a quantity of 1 to 3, and the
    first of them once more: a track may come twice, each pair its own line."""
    rows = await observer.execute_fetchall(
        "SELECT track_id FROM track WHERE track_id NOT IN (13, ?) ORDER BY random() LIMIT 4",
        (PAUSED_TRACK,))
    lines = [(r[0], random.randint(1, 3)) for r in rows[:random.randint(2, 4)]]
    return [*lines, (lines[0][0], random.randint(1, 3))]  # a track twice: two lines, as given


async def _invoice_cases(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                         create_invoice, pause: _Pause) -> str:
    before = await _counts(observer, "invoice", "invoice_line")
    last_id = (await (await observer.execute("SELECT max(invoice_id) FROM invoice")).fetchone())[0]
    statements: list[str] = []
    await db.set_trace_callback(statements.append)  # each statement SQLite runs, values expanded
    try:
        invoice_id = await _run(create_invoice, db, 7, list(GOOD_LINES))
    except LearnerError as exc:
        await _rolled_back_if_open(db)
        _id_taken(exc, "invoice", "invoice_id", f"create_invoice(db, 7, {GOOD_LINES})")
        raise
    finally:
        if not _is_closed(db):
            await db.set_trace_callback(None)
    if await _rolled_back_if_open(db):
        raise Wrong("create_invoice left its transaction open, so nothing is saved: the inserts "
                    "began a transaction, and only `await db.commit()` ends it.")
    _chose_its_id(statements, f"create_invoice(db, 7, {GOOD_LINES})")
    if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
        raise Wrong("create_invoice should return the new invoice_id, an int (cursor.lastrowid "
                    f"after the INSERT); it returned {type(invoice_id).__name__}.")
    new = await _new_invoices(observer, last_id)
    if new and invoice_id not in new:
        raise Wrong(f"create_invoice returned {invoice_id}, but the invoice it saved is "
                    f"number {new[0]}. Return the id SQLite gave the new row: "
                    "cursor.lastrowid, read right after the invoice's INSERT (it changes "
                    "with every INSERT); a count of the invoices is no id, since ids have "
                    "gaps.")
    row = await (await observer.execute(
        "SELECT customer_id, total FROM invoice WHERE invoice_id = ?", (invoice_id,))).fetchone()
    if row is None:
        raise Wrong(f"another connection cannot see invoice {invoice_id}: it was not committed. "
                    "Call `await db.commit()` after the last insert.")
    lines = await observer.execute_fetchall(
        "SELECT track_id, unit_price, quantity FROM invoice_line WHERE invoice_id = ?",
        (invoice_id,))
    expected_lines = [(1, 0.99, 2), (3, 0.99, 1), (2819, 1.99, 1)]
    if sorted(tuple(r) for r in lines) != expected_lines:
        raise Wrong(f"invoice {invoice_id} should have 3 lines (track_id, unit_price, quantity) "
                    f"{expected_lines}, priced from the track table; it has "
                    f"{sorted(tuple(r) for r in lines)}.")
    if row[0] != 7 or not isinstance(row[1], (int, float)) or abs(row[1] - GOOD_TOTAL) > 0.005:
        raise Wrong(f"the invoice should belong to customer 7 with total {GOOD_TOTAL} (the sum of "
                    f"unit_price × quantity); it has customer {row[0]} and total {row[1]!r}.")
    after_good = await _counts(observer, "invoice", "invoice_line")
    if after_good != (before[0] + 1, before[1] + 3):
        raise Wrong(f"one invoice should add 1 invoice and 3 lines; yours added "
                    f"{after_good[0] - before[0]} and {after_good[1] - before[1]}.")

    # Called again, with other tracks: not only the shipped example works.
    lines = await _random_lines(observer)
    watch = _Watched(db)
    second = await _run(create_invoice, watch, 42, list(lines))
    pasted = [v for v in (42, second, *(t for t, _ in lines))
              if isinstance(v, int) and any(_number_in(sql, v) for sql, _ in watch.statements)]
    if pasted:
        if db.in_transaction:
            await db.rollback()
        raise Wrong(f"create_invoice(db, 42, {lines}): the value {pasted[0]} is inside the text "
                    "of your SQL, so it was formatted into the query. Bind every value with `?` "
                    "and pass it in the parameters, numbers included.")
    if db.in_transaction:
        await db.rollback()
        raise Wrong("called a second time, create_invoice left its transaction open.")
    new = await _new_invoices(observer, invoice_id)
    if new != [second]:
        raise Wrong(f"called a second time, create_invoice(db, 42, {lines}) returned {second!r}, "
                    f"but the invoices saved since the first call are {new}: return the new "
                    "invoice's id, cursor.lastrowid right after its INSERT.")
    expected_total = 0.0
    for track_id, quantity in lines:
        price = (await (await observer.execute(
            "SELECT unit_price FROM track WHERE track_id = ?", (track_id,))).fetchone())[0]
        expected_total += price * quantity
    row = await (await observer.execute(
        "SELECT customer_id, total FROM invoice WHERE invoice_id = ?", (second,))).fetchone()
    count = (await (await observer.execute(
        "SELECT count(*) FROM invoice_line WHERE invoice_id = ?", (second,))).fetchone())[0]
    if count == len({t for t, _ in lines}) < len(lines):
        raise Wrong(f"create_invoice(db, 42, {lines}) saved {count} lines for {len(lines)} pairs: "
                    f"track {lines[0][0]} comes twice, and each pair is a line of its own. Insert "
                    "one invoice_line per pair, as given (no dict keyed by track).")
    if (row[0] != 42 or not isinstance(row[1], (int, float))
            or abs(row[1] - expected_total) > 0.005 or count != len(lines)):
        raise Wrong(f"create_invoice(db, 42, {lines}) saved customer {row[0]}, total {row[1]!r} "
                    f"and {count} line(s); expected customer 42, total "
                    f"{round(expected_total, 2)} and {len(lines)} lines. Use the arguments and "
                    "the track table, nothing fixed.")
    after_good = await _counts(observer, "invoice", "invoice_line")

    for lines, why in ((FAILING_LINES, "the database refused its second line (track 13)"),
                       (MISSING_LINES, "its second line names track 999999, which does not exist"),
                       (COSTLY_LINES, "the database refused its total, the last step (over 100)")):
        newest = (await (await observer.execute("SELECT max(invoice_id) FROM invoice")).fetchone())[0]
        try:
            got = await _run(create_invoice, db, 7, list(lines))
        except LearnerError:
            pass  # the failure must reach the caller
        else:
            if lines is MISSING_LINES and not db.in_transaction:
                saved = await _new_invoices(observer, newest)
                missing = await observer.execute_fetchall(
                    "SELECT count(*) FROM invoice_line WHERE track_id = 999999")
                if saved and missing[0][0] == 0:
                    raise Wrong(f"create_invoice(db, 7, {lines}) returned {got!r}, and no line "  # noqa: S608 -- a message, not SQL
                                "was inserted for track 999999, so nothing failed: an INSERT … "
                                "SELECT … WHERE track_id = ? that finds no track inserts no row, "
                                "without an error (and SQLite checks no foreign key unless `PRAGMA "
                                "foreign_keys = ON`). A missing track must fail: take the price "
                                "with a subquery in VALUES (no track gives NULL, which NOT NULL "
                                "refuses), or check that each line went in.")
            raise Wrong(f"create_invoice(db, 7, {lines}) returned {got!r}, but {why}. It must "
                        "fail: roll back, then re-raise (`raise`), so the caller knows nothing "
                        "was saved.")
        if _is_closed(db):
            raise _closed_given_connection()
        now = await _counts(observer, "invoice", "invoice_line")
        if now != after_good:
            if db.in_transaction:
                await db.rollback()
            raise Wrong(f"when {why}, {now[0] - after_good[0]} invoice(s) and "
                        f"{now[1] - after_good[1]} line(s) stayed in the database. Commit once, "
                        "after the last statement (the total's included), and roll back if any "
                        "step fails.")
        if db.in_transaction:
            await db.rollback()
            raise Wrong(f"when {why}, your function left the transaction open, with the "
                        "invoice row still pending in it: the next commit on this connection "
                        "would save half an invoice. Catch the error, `await db.rollback()`, "
                        "then `raise`.")

    # Not a database error: the lines themselves fail midway, after the invoice's INSERT.
    lines = ListThatBreaks(GOOD_LINES, 1, "the list of lines")
    why = "the list of lines raised an error (not a database error) while being read"
    await must_raise(InjectedFailure, _run(create_invoice, db, 7, lines),
                     lambda got: f"{why}, and create_invoice returned {got!r}. Let every error "
                                 "reach the caller: roll back, then `raise`.")
    in_transaction = await _rolled_back_if_open(db)
    now = await _counts(observer, "invoice", "invoice_line")
    if now != after_good:
        raise Wrong(f"when {why}, {now[0] - after_good[0]} invoice(s) and "
                    f"{now[1] - after_good[1]} line(s) stayed in the database. Commit only "
                    "after the last statement, and roll back on any error.")
    if in_transaction:
        raise Wrong(f"when {why}, your function left the transaction open, with the invoice "
                    "row pending in it. Rolling back only on sqlite3.Error is not enough: a bug, "
                    "a timeout or a cancellation can stop the work midway too. Catch them all: "
                    "`except BaseException: await db.rollback(); raise`.")

    # Cancelled midway, as a timeout would: while the database inserts track 15's line.
    what = f"create_invoice(db, 7, {PAUSED_LINES})"
    outcome = await pause.cancel_midway(db, create_invoice, 7, list(PAUSED_LINES))
    in_transaction = await _rolled_back_if_open(db)
    _after_cancel(outcome, pause, what)
    if in_transaction:
        raise Wrong(f"cancelled midway (as a timeout would), {what} left its transaction open, "
                    "with the invoice pending in it: the next commit on this connection would "
                    "save half an invoice. `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException): `except BaseException: await "
                    "db.rollback(); raise`.")
    now = await _counts(observer, "invoice", "invoice_line")
    if now != after_good:
        raise Wrong(f"cancelled midway, {what} left {now[0] - after_good[0]} invoice(s) and "
                    f"{now[1] - after_good[1]} line(s) in the database. Commit only after the "
                    "last statement, and roll back on any exception, a cancellation included.")
    return ("committed when complete, twice; rolled back on any failure, database error or not, "
            "and when cancelled midway.")


q3 = Exercise(
    "q3", "create_invoice", _check_create_invoice,
    hints=["Python's sqlite3 (under aiosqlite) opens a transaction before the first INSERT; "
           "nothing is saved until `await db.commit()`. Commit once, after the last insert.",
           "Wrap the inserts in `try:` … `await db.commit()`, and `except BaseException: await "
           "db.rollback(); raise`. The invoice's id is `cursor.lastrowid` after its INSERT.",
           "For each line, take the price in the same statement: `INSERT INTO invoice_line "
           "(invoice_id, track_id, unit_price, quantity) VALUES (?, ?, (SELECT unit_price FROM "
           "track WHERE track_id = ?), ?)`. A missing track gives NULL, which NOT NULL refuses. "
           "Finish with an UPDATE of the invoice's total."],
    title="An invoice and its lines, all or nothing",
)


# --- q4: a playlist with executemany -------------------------------------------------------

BIND_NAME = "`VALUES (?)` in the SQL, and `(name,)` in the parameters"
# Playlists deleted in the middle: the ids have gaps, so count(*) + 1 is an id already taken.
PLAYLIST_GAPS = """
    DELETE FROM playlist_track WHERE playlist_id BETWEEN 2 AND 4;
    DELETE FROM playlist WHERE playlist_id BETWEEN 2 AND 4;
"""
PLAYLIST_CASES = [("Road trip", [3, 1, 2819, 7, 1000]), ("O'Brien's \"best\"; --", [42]),
                  ("Silence", [])]


async def _check_add_playlist(add_playlist) -> str:
    async with _database("check-03-q4") as (db, observer):
        await db.executescript(PLAYLIST_GAPS)
        await db.commit()
        pause = _Pause()
        await pause.install(db, "playlist_track")
        next_id = (await (await observer.execute("SELECT max(playlist_id) FROM playlist"))
                   .fetchone())[0] + 1
        rows = await observer.execute_fetchall(
            "SELECT track_id FROM track WHERE track_id <> ? ORDER BY random() LIMIT ?",
            (PAUSED_TRACK, random.randint(12, 30)))
        cases = [*PLAYLIST_CASES, (f"Random {random.randint(100, 999)}", [r[0] for r in rows])]
        for name, track_ids in cases:
            what = f"add_playlist(db, {name!r}, {track_ids})"
            watch = _Watched(db)
            try:
                playlist_id = await _run(add_playlist, watch, name, list(track_ids))
            except LearnerError as exc:
                if watch.pasted(name):
                    raise _pasted_into_sql(what, name, BIND_NAME) from None
                await _rolled_back_if_open(db)
                _id_taken(exc, "playlist", "playlist_id", what)
                if "'" in name:
                    raise Wrong(f"the quote in the name {name!r} broke your SQL ({exc}). Never "
                                "build SQL with f-strings: `VALUES (?)` and pass `(name,)`.") from None
                raise
            if watch.pasted(name):
                if db.in_transaction:
                    await db.rollback()
                raise _pasted_into_sql(what, name, BIND_NAME)
            if await _rolled_back_if_open(db):
                raise Wrong(f"{what} left its transaction open, so the playlist is not saved: "
                            "finish with `await db.commit()`.")
            if not isinstance(playlist_id, int) or isinstance(playlist_id, bool):
                raise Wrong("add_playlist should return the new playlist_id, an int "
                            f"(cursor.lastrowid); it returned {type(playlist_id).__name__}.")
            if playlist_id != next_id:
                raise Wrong(f"{what} returned {playlist_id}; the new playlist's id is {next_id}. "
                            "Return cursor.lastrowid from the INSERT INTO playlist.")
            stored = await observer.execute_fetchall(
                "SELECT name FROM playlist WHERE playlist_id = ?", (playlist_id,))
            if [tuple(r) for r in stored] != [(name,)]:
                raise Wrong(f"{what}: another connection sees the playlist's name as "
                            f"{[r[0] for r in stored]}, not [{name!r}]. Insert the name as a "
                            "bound parameter and commit.")
            tracks = await observer.execute_fetchall(
                "SELECT track_id FROM playlist_track WHERE playlist_id = ? ORDER BY track_id",
                (playlist_id,))
            if [r[0] for r in tracks] != sorted(track_ids):
                raise Wrong(f"{what}: playlist {playlist_id} holds tracks "
                            f"{[r[0] for r in tracks]}; expected {sorted(track_ids)}, one "
                            "(playlist_id, track_id) row per track.")
            one_by_one, many = watch.touching("playlist_track")
            if len(track_ids) > 1 and one_by_one > 1:
                raise Wrong(f"{what} ran {one_by_one} separate statements on "
                            "playlist_track, one per track, each a round trip to the "
                            "connection's thread. Send them all at once: `await "
                            "db.executemany(sql, [(playlist_id, t) for t in track_ids])`.")
            if len(track_ids) > 1 and many == 0:
                raise Wrong(f"{what} did not use executemany for the tracks: one "
                            "`await db.executemany(sql, rows)` inserts them all.")
            next_id += 1

        counts = await _counts(observer, "playlist", "playlist_track")
        try:
            got = await _run(add_playlist, _Watched(db), "Broken", [1, 2, 1])
        except LearnerError:
            pass
        else:
            raise Wrong(f"add_playlist(db, 'Broken', [1, 2, 1]) returned {got!r}, but track 1 "
                        "twice breaks the primary key of playlist_track. Let that error "
                        "propagate after rolling back.")
        if await _rolled_back_if_open(db):
            raise Wrong("when a track could not be added (track 1 twice), the transaction stayed "
                        "open with the playlist row pending in it. Roll back on error: `except "
                        "BaseException: await db.rollback(); raise`.")
        now = await _counts(observer, "playlist", "playlist_track")
        if now != counts:
            raise Wrong(f"when a track could not be added (track 1 twice), {now[0] - counts[0]} "
                        f"playlist(s) and {now[1] - counts[1]} track row(s) stayed saved. Commit "
                        "once at the end, and roll back on error.")

        # Cancelled while the database inserts the tracks, as a timeout would.
        what = f"add_playlist(db, 'Interrupted', [2, {PAUSED_TRACK}, 4])"
        outcome = await pause.cancel_midway(db, add_playlist, "Interrupted", [2, PAUSED_TRACK, 4])
        in_transaction = await _rolled_back_if_open(db)
        _after_cancel(outcome, pause, what)
        if in_transaction:
            raise Wrong(f"cancelled midway (as a timeout would), {what} left its transaction "
                        "open, with the playlist pending in it. `except Exception:` does not "
                        "catch a cancellation (CancelledError is a BaseException): `except "
                        "BaseException: await db.rollback(); raise`.")
        now = await _counts(observer, "playlist", "playlist_track")
        if now != counts:
            raise Wrong(f"cancelled midway, {what} left {now[0] - counts[0]} playlist(s) and "
                        f"{now[1] - counts[1]} track row(s) saved. Commit once at the end, and "
                        "roll back on any exception, a cancellation included.")
    return ("one executemany per playlist, committed once; rolled back on a duplicate and when "
            "cancelled midway.")


q4 = Exercise(
    "q4", "add_playlist", _check_add_playlist,
    hints=["Two statements: one INSERT INTO playlist for the name (its id is `cursor.lastrowid`), "
           "then one executemany for every (playlist_id, track_id) pair.",
           "`await db.executemany(\"INSERT INTO playlist_track (playlist_id, track_id) VALUES "
           "(?, ?)\", [(playlist_id, t) for t in track_ids])`.",
           "Same transaction pattern as q3: `try:` … `await db.commit()` / `except BaseException: "
           "await db.rollback(); raise`."],
    title="A playlist in one executemany",
)


# --- q5: own the connection: dict rows, closed on every path -------------------------------

CUSTOMERS_SQL = """
    SELECT customer_id, first_name, last_name, email FROM customer
    WHERE country = ? ORDER BY last_name, first_name
"""


COUNTRY_HOSTILE = ("O'Brien", "x' OR '1'='1")  # no customer lives there: both give []


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if WORKER in t.name and t.is_alive()}


@asynccontextmanager
async def _recording_connect() -> AsyncIterator[list[aiosqlite.Connection]]:
    """Record every connection aiosqlite.connect makes meanwhile; close any left open."""
    opened: list[aiosqlite.Connection] = []
    real = aiosqlite.connect

    def connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        conn = real(*args, **kwargs)
        opened.append(conn)
        return conn

    aiosqlite.connect = connect
    try:
        yield opened
    finally:
        aiosqlite.connect = real
        for conn in opened:
            if conn._connection is not None:  # the check cleans up a leak
                await conn.close()


async def _left_open(opened: list[aiosqlite.Connection], before: set[threading.Thread]) -> int:
    """How many connections the learner's call left open (waits briefly for threads to end)."""
    if opened:
        return sum(not _is_closed(conn) for conn in opened)
    for _ in range(100):  # `from aiosqlite import connect` escapes the recorder: watch threads
        if not (_workers() - before):
            return 0
        await asyncio.sleep(0.01)
    return len(_workers() - before)


class _RecordedCursor(sqlite3.Cursor):
    """A sqlite3 cursor that notes the SQL it runs on its _Recorded connection."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self.connection.sql.append(str(sql))
        return super().executescript(sql)


class _Recorded(sqlite3.Connection):
    """A sqlite3 connection (under aiosqlite or used directly) that notes the thread that
    opened it, whether it was closed, and the SQL run through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.thread = threading.get_ident()
        self.closed_here = False
        self.sql: list[str] = []

    def close(self) -> None:
        self.closed_here = True
        super().close()

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:
        return super().cursor(factory or _RecordedCursor)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.cursor().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.cursor().executescript(sql)


@asynccontextmanager
async def _recording_sqlite3(pause: _Pause | None = None) -> AsyncIterator[list[_Recorded]]:
    """Record every sqlite3 connection opened meanwhile, by aiosqlite or directly. Given a
    _Pause, the first statement run on them waits until the check releases it."""
    opened: list[_Recorded] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if "factory" in kwargs:
            return real(*args, **kwargs)
        conn = real(*args, factory=_Recorded, **kwargs)
        if pause is not None:
            conn.set_progress_handler(pause.progress, 20)
        opened.append(conn)
        return conn

    sqlite3.connect = connect
    try:
        yield opened
    finally:
        sqlite3.connect = real


SYNC_SQLITE = ("{what} opened a plain sqlite3 connection on the event loop's thread. sqlite3 is "
               "synchronous: every query blocks the loop, and nothing else runs meanwhile. Use "
               "aiosqlite, `async with aiosqlite.connect(path) as db:`, which runs sqlite3 in a "
               "thread of its own.")
SQLITE3_LEFT_OPEN = ("{what} left a sqlite3 connection open. sqlite3's `with conn:` commits or "
                     "rolls back, but does not close; use `async with aiosqlite.connect(path) as "
                     "db:`, which closes it on every path.")
BIND_COUNTRY = "`WHERE country = ?` in the SQL, and `(country,)` in the parameters"


def _judge_sqlite3(recorded: list[_Recorded], what: str, loop_thread: int, country: str | None) -> None:
    if any(conn.thread == loop_thread for conn in recorded):
        raise Wrong(SYNC_SQLITE.format(what=what))
    if any(not conn.closed_here for conn in recorded):
        raise Wrong(SQLITE3_LEFT_OPEN.format(what=what))
    if country and len(country) > 1 and any(
            country.casefold() in sql.casefold() for conn in recorded for sql in conn.sql):
        raise _pasted_into_sql(what, country, BIND_COUNTRY)


async def _customers_cancelled(customers_in, path: Path) -> None:
    """Cancel a call while its query runs, as a timeout would: the connection must be closed,
    and the cancellation must reach the caller."""
    what = "customers_in(path, 'Canada')"
    pause = _Pause()
    before = _workers()
    open_at_return: list[int] = []
    async with _recording_connect() as opened, _recording_sqlite3(pause) as recorded:

        async def run() -> Any:
            """The learner's call, noting how many connections were open as it ended."""
            try:
                return await _run(customers_in, path, "Canada")
            finally:
                open_at_return.append(sum(not conn.closed_here for conn in recorded))

        task = asyncio.ensure_future(run())
        try:
            waiter = asyncio.ensure_future(pause.started.wait())
            try:
                await asyncio.wait([task, waiter], timeout=5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if pause.started.is_set():
                task.cancel()
                # The query stays paused for a few turns of the loop: a call that returns now
                # returns with its connection still open in a worker thread. (A correct one
                # waits for the close, which waits for the query: it cannot end meanwhile.)
                for _ in range(50):
                    if task.done():
                        break
                    await asyncio.sleep(0)
        finally:
            pause.release.set()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        left = await _left_open(opened, before)
        for _ in range(100):  # a worker thread the cancelled call started may still be closing
            if all(conn.closed_here for conn in recorded):
                break
            await asyncio.sleep(0.01)
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not pause.started.is_set():
        raise Wrong(f"{what} finished without running a query on the connections it opened.")
    if any(not conn.closed_here for conn in recorded):
        left = left or 1
    if left:
        raise Wrong(f"cancelled during its query (as a timeout would), {what} left its "
                    "connection open: `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException). `async with aiosqlite.connect(path) as "
                    "db:` (or `finally: await db.close()`) closes it on every path.")
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled during its query (as a timeout would), {what} returned "
                    f"{outcome!r}: it swallowed the CancelledError. Close the connection, and "
                    "let the cancellation reach the caller.")
    if any(open_at_return):
        raise Wrong(f"cancelled during its query (as a timeout would), {what} let the "
                    "cancellation through while its connection was still open: the query went "
                    "on in a worker thread, and the connection closed only later. "
                    "asyncio.to_thread stops waiting when cancelled; it does not stop the "
                    "thread. Use `async with aiosqlite.connect(path) as db:`, whose close waits "
                    "for the query, or wait for the thread to finish before re-raising.")


def _broken_copy() -> Path:
    """A Chinook copy without its customer table, so the query fails."""
    path = fresh_sqlite("check-03-q5-broken")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE customer")
    conn.close()
    return path


# Two more Canadians named Mitchell, Zoe stored before Adam: ordered by last_name alone, they
# come out in storage order, not by first name.
MORE_MITCHELLS = [(60, "Zoe", "Mitchell", "Canada", "zoe.mitchell@example.com"),
                  (61, "Adam", "Mitchell", "Canada", "adam.mitchell@example.com")]


async def _check_customers_in(customers_in) -> str:
    path = fresh_sqlite("check-03-q5")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO customer (customer_id, first_name, last_name, country, email) "
                         "VALUES (?, ?, ?, ?, ?)", MORE_MITCHELLS)
    async with aiosqlite.connect(path) as observer:
        observer.row_factory = aiosqlite.Row
        loop_thread = threading.get_ident()
        for country in ("Canada", "Ireland", "Atlantis", *COUNTRY_HOSTILE, "Canada"):
            what = f"customers_in(path, {country!r})"
            before = _workers()
            async with _recording_connect() as opened, _recording_sqlite3() as recorded:
                try:
                    got = await _run(customers_in, path, country)
                except LearnerError as exc:
                    _judge_sqlite3(recorded, what, loop_thread, country)
                    if "'" in country:
                        raise Wrong(f"the quote in {country!r} broke your query ({exc}): the "
                                    "country became part of the SQL. Bind it: "
                                    f"{BIND_COUNTRY}.") from None
                    raise
                left = await _left_open(opened, before)
            _judge_sqlite3(recorded, what, loop_thread, country)
            if left:
                raise Wrong(f"{what} left its connection open (its thread is still running). "
                            "Open it with `async with aiosqlite.connect(path) as db:`, which "
                            "closes it on every path.")
            expected = [dict(r) for r in await observer.execute_fetchall(CUSTOMERS_SQL, (country,))]
            if not isinstance(got, list):
                raise Wrong(f"{what} should return a list of dicts, not {type(got).__name__}.")
            if got and not all(isinstance(r, dict) for r in got):
                raise Wrong(f"{what} returned {type(got[0]).__name__} rows, not dicts. Set a "
                            "row factory that builds dicts (or convert each sqlite3.Row with "
                            "dict(row)).")
            if got == expected:
                continue
            if got and expected and set(got[0]) != set(expected[0]):
                raise Wrong(f"each dict should have the keys customer_id, first_name, last_name "
                            f"and email; yours has {sorted(got[0])}.")
            if sorted(map(repr, got)) == sorted(map(repr, expected)):
                raise Wrong(f"{what} has the right customers in the wrong order: ORDER BY "
                            "last_name, first_name.")
            raise Wrong(f"{what} returned {len(got)} customers; expected {len(expected)}.")

        broken = _broken_copy()
        before = _workers()
        async with _recording_connect() as opened, _recording_sqlite3() as recorded:
            try:
                got = await _run(customers_in, broken, "Canada")
            except LearnerError:
                got = None
                failed = True
            else:
                failed = False
            left = await _left_open(opened, before)
        what = "on a database without a customer table, customers_in"
        if any(conn.thread == loop_thread for conn in recorded):
            raise Wrong(SYNC_SQLITE.format(what=what))
        if any(not conn.closed_here for conn in recorded):
            left = left or 1
        if left:
            raise Wrong("when the query failed (a database without a customer table), your "
                        "connection stayed open: close() was skipped by the exception. Use "
                        "`async with aiosqlite.connect(path) as db:`, which closes it anyway.")
        if not failed:
            raise Wrong(f"on a database without a customer table, customers_in returned {got!r}. "
                        "Let the error propagate: an empty answer would hide a broken database.")
        await _customers_cancelled(customers_in, path)
    return ("dict rows, hostile countries kept as data, and the connection closed on success, on "
            "failure and when cancelled.")


q5 = Exercise(
    "q5", "customers_in", _check_customers_in,
    hints=["`async with aiosqlite.connect(path) as db:` opens the connection and closes it when "
           "the block ends, even through an exception.",
           "A row factory is a function (cursor, row) → anything. For dicts: "
           "`{col[0]: value for col, value in zip(cursor.description, row, strict=True)}`; set it with "
           "`db.row_factory = ...` before executing.",
           "`SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
           "ORDER BY last_name, first_name`, with `(country,)`, and return `await "
           "cursor.fetchall()` inside the `async with`."],
    title="Own the connection: dict rows, closed on every path",
)
