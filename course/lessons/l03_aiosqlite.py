"""Checks for exercises/03-aiosqlite.ipynb."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from course.checks import Exercise, LearnerError, Wrong, call
from course.probes import HOSTILE_INPUTS
from course.sqlite import fresh_sqlite

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
            elif "'Result' object" in text or "`await`" in text:
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


# --- q1: a search that survives any input -------------------------------------------------

SEARCH_SQL = """
    SELECT track_id, name FROM track
    WHERE instr(lower(name), lower(?)) > 0
    ORDER BY track_id
"""
SEARCH_CASES = ["love", "LOVE", "don't", *HOSTILE_INPUTS, "100%"]


async def _check_search_tracks(search_tracks) -> str:
    async with _database("check-03-q1") as (db, observer):
        for text in SEARCH_CASES:
            what = f"search_tracks(db, {text!r})"
            try:
                got = await _run(search_tracks, db, text)
            except LearnerError as exc:
                if "'" in text:
                    raise Wrong(f"the quote in {text!r} broke your query ({exc}): the text "
                                "became part of the SQL. Never build SQL with f-strings; write "
                                "`LIKE ?` and pass the text in the parameters.") from None
                raise
            rows = _rows(got, what)
            expected = [tuple(r) for r in await observer.execute_fetchall(SEARCH_SQL, (text,))]
            if await observer.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE name = 'track'") == []:
                raise Wrong(f"{what} dropped the track table: the text ran as SQL. Bind it as a "
                            "parameter (`?`) instead of formatting it into the query.")
            if rows == expected:
                continue
            if rows and len(rows[0]) != 2:
                raise Wrong(f"each row should have 2 columns (track_id, name); yours have "
                            f"{len(rows[0])}.")
            if ("%" in text or "_" in text) and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks, but only {len(expected)} track "
                            f"name(s) contain {text!r}: % and _ are LIKE wildcards. Escape them in the "
                            "text (`\\%`, `\\_`) and add `ESCAPE '\\'`, or use instr().")
            if "'" in text and len(rows) > len(expected):
                raise Wrong(f"{what} returned {len(rows)} tracks instead of {len(expected)}: the "
                            "input rewrote your SQL (SQL injection). Bind it with `?` instead of "
                            "formatting it into the query.")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right tracks in the wrong order: ORDER BY track_id.")
            if set(rows) < set(expected) and all(text in str(r[1]) for r in rows):
                raise Wrong(f"{what} returned only the {len(rows)} names that match its case; "
                            f"expected {len(expected)}: the search must ignore case. LIKE already "
                            "does (for ASCII); with instr(), compare lower(name) with lower(?).")
            raise Wrong(f"{what} returned {len(rows)} tracks; expected {len(expected)}"
                        + (f", starting with {expected[0]}." if expected else "."))
    return f"{len(SEARCH_CASES)} searches, hostile ones included, all treated as plain text."


q1 = Exercise(
    "03", "q1", "search_tracks", _check_search_tracks,
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


async def _check_top_artists(top_artists) -> str:
    async with _database("check-03-q2") as (db, observer):
        for n in (5, 1, 12, 0):
            what = f"top_artists(db, {n})"
            rows = _rows(await _run(top_artists, db, n), what)
            expected = [tuple(r) for r in await observer.execute_fetchall(TOP_ARTISTS_SQL, (n,))]
            if rows == expected:
                continue
            if len(rows) != n:
                raise Wrong(f"{what} returned {len(rows)} rows; expected {n}. Pass n itself "
                            "to `LIMIT ?` (no +1 or -1).")
            if rows and len(rows[0]) != 2:
                raise Wrong("each row should have two columns: the artist's name and its number "
                            "of tracks.")
            if sorted(rows) == sorted(expected):
                raise Wrong(f"{what} has the right artists in the wrong order: most tracks first "
                            "(ORDER BY tracks DESC), then by name.")
            if n == 5 and ("Lost", 92) in rows:
                raise Wrong("Deep Purple and Lost both have 92 tracks; break the tie by name "
                            "(ORDER BY tracks DESC, name), so Deep Purple comes fifth.")
            raise Wrong(f"{what} should start with {expected[0]}; yours starts with "
                        f"{rows[0] if rows else 'nothing'}. Count tracks per artist: join track "
                        "to album to artist and GROUP BY the artist.")
    return "Iron Maiden leads with 213 tracks; ties broken by name."


q2 = Exercise(
    "03", "q2", "top_artists", _check_top_artists,
    hints=["Tracks belong to albums and albums to artists: join track → album → artist, then "
           "GROUP BY the artist and count(*).",
           "ORDER BY the count DESC, then by name, so ties come out the same every time.",
           "End with `LIMIT ?` and pass `(n,)`; `rows = await cursor.fetchall()` needs its await "
           "too."],
    title="The top-N artists by number of tracks",
)


# --- q3: an invoice and its lines, all or nothing -----------------------------------------

# The check's own failure: the database refuses to sell track 13, whatever the code does first.
REFUSE_TRACK_13 = """
    CREATE TRIGGER refuse_track_13 BEFORE INSERT ON invoice_line
    WHEN NEW.track_id = 13
    BEGIN
        SELECT RAISE(ABORT, 'track 13 is not for sale (a failure injected by the check)');
    END
"""
GOOD_LINES = [(1, 2), (2819, 1), (3, 1)]  # 0.99 × 2 + 1.99 + 0.99
GOOD_TOTAL = 4.96
FAILING_LINES = [(5, 1), (13, 1), (6, 1)]
MISSING_LINES = [(7, 1), (999_999, 1)]


async def _counts(observer: aiosqlite.Connection, *tables: str) -> tuple[int, ...]:
    counts = []
    for table in tables:  # names from the fixed list above, never from input
        async with observer.execute(f"SELECT count(*) FROM {table}") as cursor:  # noqa: S608 -- table names are constants of the check
            counts.append((await cursor.fetchone())[0])
    return tuple(counts)


async def _check_create_invoice(create_invoice) -> str:
    async with _database("check-03-q3") as (db, observer):
        await db.execute(REFUSE_TRACK_13)
        await db.commit()
        return await _invoice_cases(db, observer, create_invoice)


async def _invoice_cases(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                         create_invoice) -> str:
    before = await _counts(observer, "invoice", "invoice_line")
    invoice_id = await _run(create_invoice, db, 7, list(GOOD_LINES))
    if _is_closed(db):
        raise _closed_given_connection()
    if db.in_transaction:
        await db.rollback()
        raise Wrong("create_invoice left its transaction open, so nothing is saved: the inserts "
                    "began a transaction, and only `await db.commit()` ends it.")
    if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
        raise Wrong("create_invoice should return the new invoice_id, an int (cursor.lastrowid "
                    f"after the INSERT); it returned {type(invoice_id).__name__}.")
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

    for lines, why in ((FAILING_LINES, "the database refused its second line (track 13)"),
                       (MISSING_LINES, "its second line names track 999999, which does not exist")):
        try:
            got = await _run(create_invoice, db, 7, list(lines))
        except LearnerError:
            pass  # the failure must reach the caller
        else:
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
                        "after the last insert, and roll back if any step fails.")
        if db.in_transaction:
            await db.rollback()
            raise Wrong(f"when {why}, your function left the transaction open, with the "
                        "invoice row still pending in it: the next commit on this connection "
                        "would save half an invoice. Catch the error, `await db.rollback()`, "
                        "then `raise`.")
    return "committed when complete, rolled back when a line fails."


q3 = Exercise(
    "03", "q3", "create_invoice", _check_create_invoice,
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

class _CountingConnection:
    """Passes everything to the real connection, counting the statements that touch
    playlist_track by the method that ran them."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.one_by_one = 0   # execute(), execute_insert(), execute_fetchall()
        self.many = 0         # executemany()

    def _seen(self, sql: Any, many: bool) -> None:
        if "playlist_track" in str(sql).lower():
            if many:
                self.many += 1
            else:
                self.one_by_one += 1

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self._seen(sql, False)
        return self._db.execute(sql, parameters)

    def execute_insert(self, sql: str, parameters: Any = None) -> Any:
        self._seen(sql, False)
        return self._db.execute_insert(sql, parameters)

    def execute_fetchall(self, sql: str, parameters: Any = None) -> Any:
        self._seen(sql, False)
        return self._db.execute_fetchall(sql, parameters)

    def executemany(self, sql: str, parameters: Any) -> Any:
        self._seen(sql, True)
        return self._db.executemany(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


PLAYLIST_CASES = [("Road trip", [3, 1, 2819, 7, 1000]), ("O'Brien's \"best\"; --", [42]),
                  ("Silence", [])]


async def _check_add_playlist(add_playlist) -> str:
    async with _database("check-03-q4") as (db, observer):
        next_id = (await (await observer.execute("SELECT max(playlist_id) FROM playlist"))
                   .fetchone())[0] + 1
        for name, track_ids in PLAYLIST_CASES:
            what = f"add_playlist(db, {name!r}, {track_ids})"
            proxy = _CountingConnection(db)
            try:
                playlist_id = await _run(add_playlist, proxy, name, list(track_ids))
            except LearnerError as exc:
                if "'" in name:
                    raise Wrong(f"the quote in the name {name!r} broke your SQL ({exc}). Never "
                                "build SQL with f-strings: `VALUES (?)` and pass `(name,)`.") from None
                raise
            if _is_closed(db):
                raise _closed_given_connection()
            if db.in_transaction:
                await db.rollback()
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
            if len(track_ids) > 1 and proxy.one_by_one > 1:
                raise Wrong(f"{what} ran {proxy.one_by_one} separate statements on "
                            "playlist_track, one per track, each a round trip to the "
                            "connection's thread. Send them all at once: `await "
                            "db.executemany(sql, [(playlist_id, t) for t in track_ids])`.")
            if len(track_ids) > 1 and proxy.many == 0:
                raise Wrong(f"{what} did not use executemany for the tracks: one "
                            "`await db.executemany(sql, rows)` inserts them all.")
            next_id += 1

        counts = await _counts(observer, "playlist", "playlist_track")
        try:
            got = await _run(add_playlist, _CountingConnection(db), "Broken", [1, 2, 1])
        except LearnerError:
            pass
        else:
            raise Wrong(f"add_playlist(db, 'Broken', [1, 2, 1]) returned {got!r}, but track 1 "
                        "twice breaks the primary key of playlist_track. Let that error "
                        "propagate after rolling back.")
        if _is_closed(db):
            raise _closed_given_connection()
        if db.in_transaction:
            await db.rollback()
            raise Wrong("when a track could not be added (track 1 twice), the transaction stayed "
                        "open with the playlist row pending in it. Roll back on error: `except "
                        "BaseException: await db.rollback(); raise`.")
        now = await _counts(observer, "playlist", "playlist_track")
        if now != counts:
            raise Wrong(f"when a track could not be added (track 1 twice), {now[0] - counts[0]} "
                        f"playlist(s) and {now[1] - counts[1]} track row(s) stayed saved. Commit "
                        "once at the end, and roll back on error.")
    return "one executemany per playlist, committed once, rolled back on a duplicate."


q4 = Exercise(
    "03", "q4", "add_playlist", _check_add_playlist,
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
            if conn._connection is not None:  # noqa: SLF001 -- the check cleans up a leak
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


def _broken_copy() -> Path:
    """A Chinook copy without its customer table, so the query fails."""
    path = fresh_sqlite("check-03-q5-broken")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE customer")
    conn.close()
    return path


async def _check_customers_in(customers_in) -> str:
    path = fresh_sqlite("check-03-q5")
    async with aiosqlite.connect(path) as observer:
        observer.row_factory = aiosqlite.Row
        for country in ("Canada", "Ireland", "Atlantis"):
            what = f"customers_in(path, {country!r})"
            before = _workers()
            async with _recording_connect() as opened:
                got = await _run(customers_in, path, country)
                left = await _left_open(opened, before)
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
        async with _recording_connect() as opened:
            try:
                got = await _run(customers_in, broken, "Canada")
            except LearnerError:
                got = None
                failed = True
            else:
                failed = False
            left = await _left_open(opened, before)
        if left:
            raise Wrong("when the query failed (a database without a customer table), your "
                        "connection stayed open: close() was skipped by the exception. Use "
                        "`async with aiosqlite.connect(path) as db:`, which closes it anyway.")
        if not failed:
            raise Wrong(f"on a database without a customer table, customers_in returned {got!r}. "
                        "Let the error propagate: an empty answer would hide a broken database.")
    return "dict rows, and the connection closed on success and on failure."


q5 = Exercise(
    "03", "q5", "customers_in", _check_customers_in,
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
