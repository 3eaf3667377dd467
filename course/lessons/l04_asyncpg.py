"""Checks for exercises/04-asyncpg-workbook.ipynb."""

from __future__ import annotations

import asyncio
import inspect
import random
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg import introspection

from course.checking.checks import Exercise, LearnerError, Wrong, call, must_raise
from course.checking.top_n import no_track_counted_as_one
from course.db.postgres import drop_postgres, fresh_postgres
from course.probes import (
    HOSTILE_INPUTS,
    InjectedFailure,
    ListThatBreaks,
    breaks_after,
    checked_out,
    close_pool,
)


class _QueryLog:
    """Collects the SQL text of every statement a connection runs (asyncpg query logger)."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.args: list[Any] = []

    def __call__(self, record: Any) -> None:
        if _driver_own(record.query):
            return
        self.queries.append(record.query)
        self.args.extend(record.args or ())


# asyncpg's own queries: it looks up a type it has not met on this connection yet (such as
# varchar[]) before running a statement, turning JIT off around the lookup. Not the learner's.
_INTROSPECTION = {introspection.INTRO_LOOKUP_TYPES, introspection.INTRO_LOOKUP_TYPES_13,
                  introspection.TYPE_BY_NAME}


def _driver_own(query: str) -> bool:
    return query in _INTROSPECTION or "set_config('jit'" in query


async def _logged(conn: asyncpg.Connection, fn: Any, *args: Any) -> tuple[Any, list[str]]:
    """Call the learner's fn(conn, *args) and return its result and the statements it ran."""
    log = _QueryLog()
    with conn.query_logger(log):
        try:
            result = await call(fn, conn, *args)
        finally:
            await asyncio.sleep(0)  # asyncpg hands records to loggers with call_soon
    return result, log.queries


def _rows(got: Any, what: str) -> list[tuple]:
    """The learner's rows as plain tuples, or a Wrong that says what came back instead."""
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows (what conn.fetch returns), "
                    f"not {type(got).__name__}.")
    try:
        return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows; one item is "
                    f"{type(got[0]).__name__ if got else 'missing'}.") from None


def _quoted(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)


# --- q1: customers from a list of countries ----------------------------------------------

CUSTOMERS_SQL = """
    SELECT customer_id, first_name, last_name, country
    FROM customer
    WHERE country = any($1::text[])
    ORDER BY country, last_name
"""

# A country whose name holds the separator a comma-joined list would be split at, and an
# empty name: both must stay one value each.
COMMA_COUNTRY = "Korea, Republic of"
MOVE_TO_COMMA_COUNTRY = "UPDATE customer SET country = $1 WHERE customer_id IN (23, 26)"
# Two customers whose country is empty (their ids in the opposite order to their last names),
# so that an empty name in the list has customers to match.
MOVE_TO_EMPTY_COUNTRY = "UPDATE customer SET country = '' WHERE customer_id IN (24, 27)"
COUNTRY_CASES = [["Norway", "Brazil", "Canada"], ["Portugal"], ["Canada", "India", "Canada"],
                 [COMMA_COUNTRY, "Norway", ""]]


async def _check_customers_in(customers_in) -> str:
    db = await fresh_postgres("check_04_q1")
    try:
        conn = await asyncpg.connect(db.dsn)
        try:
            await conn.execute(MOVE_TO_COMMA_COUNTRY, COMMA_COUNTRY)
            await conn.execute(MOVE_TO_EMPTY_COUNTRY)
            return await _customers_cases(conn, customers_in)
        finally:
            await conn.close()
    finally:
        await drop_postgres(db)


async def _customers_cases(conn: asyncpg.Connection, customers_in) -> str:
    texts: set[str] = set()
    every = [r[0] for r in await conn.fetch("SELECT DISTINCT country FROM customer ORDER BY 1")]
    for countries in [*COUNTRY_CASES, random.sample(every, random.randint(4, 8))]:
        got, queries = await _logged(conn, customers_in, list(countries))
        rows = _rows(got, f"customers_in(conn, [{_quoted(countries)}])")
        if any(country and country in q for q in queries for country in countries):
            raise Wrong("the country names are inside your SQL text: you built the query from "
                        "strings (f-string, + or join). Send them as one bound parameter: "
                        "`WHERE country = any($1::text[])`, then pass the list.")
        if len(queries) > 1:
            raise Wrong(f"customers_in ran {len(queries)} queries for {len(countries)} countries. "
                        "Ask once for the whole list: `WHERE country = any($1::text[])`.")
        texts.update(queries)
        expected = [tuple(r) for r in await conn.fetch(CUSTOMERS_SQL, countries)]
        _compare_customers(countries, rows, expected)
    if len(texts) > 1:
        raise Wrong("your SQL text changes with the number of countries (IN ($1, $2, ...) built "
                    "for each list), so PostgreSQL prepares a new statement every time. Use one "
                    "statement for any list: `WHERE country = any($1::text[])`.")
    for countries in ([], ["Atlantis"]):
        got = await call(customers_in, conn, countries)
        if _rows(got, f"customers_in(conn, {countries})") != []:
            raise Wrong(f"customers_in(conn, {countries}) should return an empty list.")
    hostile = [*HOSTILE_INPUTS, "Portugal"]
    try:
        got, queries = await _logged(conn, customers_in, hostile)
    except LearnerError as exc:
        raise Wrong(f"a country named {HOSTILE_INPUTS[1]!r} broke your query ({exc}). Values "
                    "must never become SQL text: bind the list as $1.") from None
    expected = [tuple(r) for r in await conn.fetch(CUSTOMERS_SQL, ["Portugal"])]
    in_text = [h for h in HOSTILE_INPUTS if len(h) > 1 and any(h in q for q in queries)]
    if in_text or _rows(got, "customers_in") != expected:
        raise Wrong(f"with hostile names such as {HOSTILE_INPUTS[0]!r} in the list, you returned "
                    f"{len(got)} rows instead of Portugal's {len(expected)}: the input changed "
                    "your SQL. Bind the list as one parameter, $1.")
    return "one statement for every list, and hostile names stay data."


def _compare_customers(countries: list[str], rows: list[tuple], expected: list[tuple]) -> None:
    call_text = f"customers_in(conn, [{_quoted(countries)}])"
    if rows == expected:
        return
    if rows and len(rows[0]) != 4:
        raise Wrong(f"each row should have 4 columns (customer_id, first_name, last_name, "
                    f"country); yours have {len(rows[0])}. Name the columns instead of SELECT *.")
    if sorted(rows) == sorted(expected):
        raise Wrong(f"{call_text} returned the right customers in the wrong order: ORDER BY "
                    "country, then last_name.")
    missing = {row[3] for row in expected} - {row[3] for row in rows}
    kept = [row for row in expected if row[3] not in missing]
    if "" in missing and missing <= {"", COMMA_COUNTRY} and sorted(rows) == sorted(kept):
        ids = ", ".join(str(row[0]) for row in expected if row[3] == "")
        both = f" and none of {COMMA_COUNTRY!r}" if COMMA_COUNTRY in missing else ""
        raise Wrong(f"{call_text} returned no customer of the empty country ''{both}, though "
                    f"customers {ids} have country = ''. An empty name is a value like any "
                    "other and must match: likely it was dropped before binding (`[c for c in "
                    "countries if c]`, `if country:`) or lost when the list was joined and "
                    "split. Pass the list as given: `WHERE country = any($1::text[])`.")
    if COMMA_COUNTRY in missing and missing <= {COMMA_COUNTRY} and sorted(rows) == sorted(kept):
        raise Wrong(f"{call_text} returned every customer but those of {COMMA_COUNTRY!r}, a "
                    "name with a comma in it: it was not matched as one value. That happens "
                    "when the list travels as one comma-joined string that SQL splits "
                    "(string_to_array). Bind the list itself: `WHERE country = any($1::text[])`, "
                    "with the Python list as the argument.")
    if len(set(countries)) < len(countries) and sorted(set(rows)) == sorted(expected):
        raise Wrong(f"{call_text} returned some customers twice: a country listed twice "
                    "matched twice (a JOIN with unnest($1) does that). Each customer comes once: "
                    "`WHERE country = any($1::text[])`.")
    raise Wrong(f"{call_text} returned {len(rows)} rows; expected {len(expected)}, the "
                f"customers of those countries. The first should be {expected[0]}.")


q1 = Exercise(
    "q1", "customers_in", _check_customers_in,
    hints=["Send the whole list as one parameter: asyncpg turns a Python list into a "
           "PostgreSQL array.",
           "`WHERE country = any($1::text[])` matches any element of the array $1; pass "
           "`countries` as the argument after the SQL.",
           "`return await conn.fetch(\"SELECT customer_id, first_name, last_name, country FROM "
           "customer WHERE country = any($1::text[]) ORDER BY country, last_name\", countries)`"],
    title="Customers from a list of countries",
)


# --- q2: the top-N artists by number of tracks --------------------------------------------

TOP_ARTISTS_SQL = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
    ORDER BY tracks DESC, ar.name
    LIMIT $1
"""


# Chinook numbers its artists alphabetically, so ties by name and ties by id agree: Deep Purple
# (id 58) and Lost (id 149) both have 92 tracks. The check renames one so that they disagree.
RENAME_TIED_ARTIST = "UPDATE artist SET name = 'Purple, Deep' WHERE artist_id = 58 AND name = 'Deep Purple'"
TIED = ("Lost", "Purple, Deep")  # 92 tracks each: by name Lost comes first, by id Purple, Deep


# Two artists of the same name, with 24 and 20 tracks: grouped by name alone, they merge.
SAME_NAME = "UPDATE artist SET name = 'Battlestar Galactica' WHERE artist_id = 158"
SAME_NAME_SHOWN = ("Battlestar Galactica", 158)
EVERY_ARTIST = 1000  # more than Chinook's 275 artists: every artist with a track comes back
# What cuts the rows in the database: LIMIT n (not LIMIT ALL), or the SQL standard's
# FETCH FIRST / FETCH NEXT n ROWS ONLY.
CUTS_ROWS = re.compile(r"\blimit\s+(?!all\b)|\bfetch\s+(first|next)\b", re.IGNORECASE)
BY_NAME_ONLY = TOP_ARTISTS_SQL.replace("GROUP BY ar.artist_id, ar.name", "GROUP BY ar.name")


async def _check_top_artists(top_artists) -> str:
    db = await fresh_postgres("check_04_q2")
    try:
        conn = await asyncpg.connect(db.dsn)
        try:
            await _rename_tied_artist(conn)
            await conn.execute(SAME_NAME)
            return await _top_artists_cases(conn, top_artists)
        finally:
            await conn.close()
    finally:
        await drop_postgres(db)


async def _rename_tied_artist(conn: asyncpg.Connection) -> None:
    """Make name order and id order disagree on the tie at fifth place, and prove they do."""
    if await conn.execute(RENAME_TIED_ARTIST) != "UPDATE 1":
        raise RuntimeError("artist 58 is not Deep Purple in this copy of Chinook")
    by_name = [tuple(r) for r in await conn.fetch(TOP_ARTISTS_SQL, 6)]
    by_id = [tuple(r) for r in await conn.fetch(
        TOP_ARTISTS_SQL.replace("ORDER BY tracks DESC, ar.name", "ORDER BY tracks DESC, ar.artist_id"), 6)]
    if [name for name, _ in by_name[4:]] != list(TIED) or by_id[4][0] != TIED[1]:
        raise RuntimeError(f"the renamed tie is not where the check expects it: {by_name[4:]}")


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


def _tie_at(rows: list[tuple], expected: list[tuple]) -> str:
    """Describe the first tie the learner's rows break differently from the expected ones."""
    for mine, want in zip(rows, expected, strict=False):
        if mine != want:
            tied = sorted({name for name, tracks in rows + expected if tracks == want[1]})
            return (f"{' and '.join(repr(name) for name in tied)} both have {want[1]} tracks, and "
                    f"{want[0]!r} comes first by name; you put {mine[0]!r} there")
    return "a tie is broken another way"


async def _top_artists_cases(conn: asyncpg.Connection, top_artists) -> str:
    texts: set[str] = set()
    for n in (5, 1, 12, 0, random.randint(13, 40), EVERY_ARTIST):
        what = f"top_artists(conn, {n})"
        got, queries = await _logged(conn, top_artists, n)
        rows = _rows(got, what)
        texts.update(queries)
        expected = [tuple(r) for r in await conn.fetch(TOP_ARTISTS_SQL, n)]
        if n == EVERY_ARTIST and _extra_are_empty(rows, expected):
            rows = rows[:len(expected)]
        if rows == expected:
            if queries and not any(CUTS_ROWS.search(q) for q in queries):
                raise Wrong(f"the SQL that {what} sent has no LIMIT (nor FETCH FIRST … ROWS "
                            "ONLY), so nothing in it cuts the list at n rows: the database sends "
                            "back every artist for your code to cut. Let the database sort and "
                            "cut, so that only n rows come back: `LIMIT $1`, with n as the "
                            "argument.")
            names = [list(r.keys()) for r in got[:1] if isinstance(r, asyncpg.Record)]
            if names and names[0] != ["name", "tracks"]:
                raise Wrong(f"{what} returned columns named {names[0]}; name them `name` and "
                            "`tracks` (`count(*) AS tracks`), so that row['tracks'] works.")
            continue
        if rows and len(rows[0]) != 2:
            raise Wrong("each row should have two columns: the artist's name and its number "
                        "of tracks.")
        _same_name_merged(rows, [tuple(r) for r in await conn.fetch(BY_NAME_ONLY, n)], what)
        if len(rows) != len(expected):
            if n == EVERY_ARTIST:
                no_track_counted_as_one(rows, expected, what)
                raise Wrong(f"{what} returned {len(rows)} rows; {len(expected)} artists have "
                            "tracks, and there are fewer than n: return each of them once (an "
                            "artist without a track may come last, with 0).")
            raise Wrong(f"top_artists(conn, {n}) returned {len(rows)} rows; expected {n} rows "
                        f"for n={n}. Pass n itself to LIMIT $1 (no +1 or -1).")
        if [tracks for _, tracks in rows] == [tracks for _, tracks in expected]:
            raise Wrong(f"top_artists(conn, {n}) breaks ties another way: {_tie_at(rows, expected)}. "
                        "Ties are broken by name: ORDER BY tracks DESC, name. (The check renamed "
                        "Deep Purple 'Purple, Deep', so that ids and names sort differently.)")
        if sorted(rows) == sorted(expected):
            raise Wrong(f"top_artists(conn, {n}) has the right artists in the wrong order: most "
                        "tracks first (ORDER BY tracks DESC), then by name.")
        raise Wrong(f"top_artists(conn, {n}) should start with {expected[0]}; yours starts with "
                    f"{rows[0] if rows else 'nothing'}. Count tracks per artist: join track to "
                    "album to artist and GROUP BY the artist.")
    if len(texts) > 1:
        raise Wrong("your SQL text changes with n: the number is inside the SQL. Bind it "
                    "instead: `LIMIT $1`, with n as the argument.")
    return "Iron Maiden leads with 213 tracks; ties broken by name."


q2 = Exercise(
    "q2", "top_artists", _check_top_artists,
    hints=["Tracks belong to albums and albums to artists: join track → album → artist, then "
           "GROUP BY the artist and count(*).",
           "ORDER BY the count DESC, then by name, so ties come out the same every time.",
           "LIMIT $1 and pass n as the argument: `await conn.fetch(sql, n)`."],
    title="The top-N artists by number of tracks",
)


# --- q3: an invoice and its lines, all or nothing -----------------------------------------

# Chinook's keys have no defaults; let PostgreSQL number new rows (the workbook does the same).
IDENTITY_DDL = """
    ALTER TABLE invoice ALTER COLUMN invoice_id ADD GENERATED BY DEFAULT AS IDENTITY;
    SELECT setval(pg_get_serial_sequence('invoice', 'invoice_id'), max(invoice_id)) FROM invoice;
    ALTER TABLE invoice_line ALTER COLUMN invoice_line_id ADD GENERATED BY DEFAULT AS IDENTITY;
    SELECT setval(pg_get_serial_sequence('invoice_line', 'invoice_line_id'), max(invoice_line_id))
    FROM invoice_line;
"""

# The check's own failure: the database refuses to sell track 13, whatever the code does first.
REFUSE_TRACK_13 = """
    CREATE FUNCTION course_refuse_track_13() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = 13 THEN
            RAISE EXCEPTION 'track 13 is not for sale (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_track_13 BEFORE INSERT ON invoice_line
        FOR EACH ROW EXECUTE FUNCTION course_refuse_track_13();
"""
# And it refuses an invoice whose total is over 100, whether the total comes with the INSERT or
# with a later UPDATE: the last step fails, after every line went in.
REFUSE_BIG_TOTAL = """
    CREATE FUNCTION course_refuse_big_total() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.total > 100 THEN
            RAISE EXCEPTION 'an invoice over 100 is refused (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_big_total BEFORE INSERT OR UPDATE ON invoice
        FOR EACH ROW EXECUTE FUNCTION course_refuse_big_total();
"""

GOOD_LINES = [(1, 2), (2819, 1), (3, 1)]  # 0.99 × 2 + 1.99 + 0.99
GOOD_TOTAL = Decimal("4.96")
FAILING_LINES = [(5, 1), (13, 1), (6, 1)]
MISSING_LINES = [(7, 1), (999_999, 1)]
COSTLY_LINES = [(1, 2), (3, 200)]  # 0.99 × 202 = 199.98: refused when the total is set
BREAKING_LINES = [(8, 1), (9, 2), (10, 1)]  # reading the list fails at its third line
PAUSED_TRACK = 15  # its line makes the database wait, so that the check can cancel midway
PAUSED_LINES = [(11, 1), (PAUSED_TRACK, 2), (12, 1)]
# The database sleeps while it inserts track 15's line: the check cancels the call meanwhile.
PAUSE_TRACK_15 = f"""
    CREATE FUNCTION course_pause_track_{PAUSED_TRACK}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = {PAUSED_TRACK} THEN
            PERFORM pg_sleep(10);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER pause_track_{PAUSED_TRACK} BEFORE INSERT ON invoice_line
        FOR EACH ROW EXECUTE FUNCTION course_pause_track_{PAUSED_TRACK}();
"""


async def _counts(observer: asyncpg.Connection) -> tuple[int, int]:
    return (await observer.fetchval("SELECT count(*) FROM invoice"),
            await observer.fetchval("SELECT count(*) FROM invoice_line"))


async def _check_create_invoice(create_invoice) -> str:
    db = await fresh_postgres("check_04_q3")
    try:
        conn = await asyncpg.connect(db.dsn)
        observer = await asyncpg.connect(db.dsn)  # sees only what was committed
        try:
            await conn.execute(IDENTITY_DDL + REFUSE_TRACK_13 + REFUSE_BIG_TOTAL + PAUSE_TRACK_15)
            return await _invoice_cases(conn, observer, create_invoice)
        finally:
            await observer.close()
            await conn.close()
    finally:
        await drop_postgres(db)


async def _invoice_cases(conn: asyncpg.Connection, observer: asyncpg.Connection, create_invoice) -> str:
    before = await _counts(observer)
    invoice_id = await call(create_invoice, conn, 7, list(GOOD_LINES))
    if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
        raise Wrong("create_invoice should return the new invoice_id, an int (INSERT ... "
                    f"RETURNING invoice_id with fetchval); it returned {type(invoice_id).__name__}.")
    if conn.is_in_transaction():
        raise Wrong("create_invoice left its connection inside a transaction, so nothing is "
                    "committed. Use `async with conn.transaction():`, which commits at the end.")
    row = await observer.fetchrow("SELECT customer_id, total FROM invoice WHERE invoice_id = $1",
                                  invoice_id)
    if row is None:
        raise Wrong(f"another connection cannot see invoice {invoice_id}: it was not committed. "
                    "Let `async with conn.transaction():` commit it.")
    lines = await observer.fetch(
        "SELECT track_id, unit_price, quantity FROM invoice_line WHERE invoice_id = $1 "
        "ORDER BY invoice_line_id", invoice_id)
    expected_lines = [(1, Decimal("0.99"), 2), (2819, Decimal("1.99"), 1), (3, Decimal("0.99"), 1)]
    if sorted(tuple(r) for r in lines) != sorted(expected_lines):
        raise Wrong(f"invoice {invoice_id} should have 3 lines (track_id, unit_price, quantity) "
                    f"{expected_lines}, with the track's own price; it has "
                    f"{[tuple(r) for r in lines]}.")
    if row["customer_id"] != 7 or row["total"] != GOOD_TOTAL:
        raise Wrong(f"the invoice should belong to customer 7 with total {GOOD_TOTAL} (the sum "
                    f"of unit_price × quantity); it has customer {row['customer_id']} and total "
                    f"{row['total']}.")
    after_good = await _counts(observer)
    if after_good != (before[0] + 1, before[1] + 3):
        raise Wrong(f"one invoice should add 1 invoice and 3 lines; yours added "
                    f"{after_good[0] - before[0]} and {after_good[1] - before[1]}.")
    await _ids_still_generated(observer)
    await _second_invoice(conn, observer, create_invoice, invoice_id)
    after_good = await _counts(observer)

    for lines, why in ((FAILING_LINES, "the database refused its second line (track 13)"),
                       (MISSING_LINES, "its second line names track 999999, which does not exist"),
                       (COSTLY_LINES, "the database refused its total, the last step (over 100)")):
        newest = await observer.fetchval("SELECT max(invoice_id) FROM invoice")
        try:
            got = await call(create_invoice, conn, 7, list(lines))
        except LearnerError:
            pass  # the failure must reach the caller
        else:
            if (lines is MISSING_LINES and not conn.is_in_transaction()
                    and await observer.fetchval("SELECT max(invoice_id) FROM invoice") != newest
                    and not await observer.fetchval(
                        "SELECT count(*) FROM invoice_line WHERE track_id = 999999")):
                raise Wrong(f"create_invoice(conn, 7, {lines}) returned {got!r}, and no line was "  # noqa: S608 -- a message, not SQL
                            "inserted for track 999999, so nothing failed: an INSERT … SELECT … "
                            "WHERE track_id = $2 that finds no track inserts no row, without an "
                            "error. A missing track must fail: take the price with a subquery "
                            "in VALUES (no track gives NULL, which NOT NULL refuses), or check "
                            "the status each INSERT returns ('INSERT 0 1').")
            raise Wrong(f"create_invoice(conn, 7, {lines}) returned {got!r}, but {why}. It must "
                        "fail: let the error propagate, so the caller knows nothing was saved.")
        if conn.is_in_transaction():
            raise Wrong("after a failed line, the connection was left inside a failed "
                        "transaction; every later query on it fails. Use `async with "
                        "conn.transaction():`, which rolls back when an exception leaves it.")
        now = await _counts(observer)
        if now != after_good:
            raise Wrong(f"when {why}, {now[0] - after_good[0]} invoice(s) and "
                        f"{now[1] - after_good[1]} line(s) stayed in the database. Nothing from a "
                        "failed invoice may remain: put every statement, the UPDATE of the total "
                        "included, inside one `async with conn.transaction():` block.")

    lines = ListThatBreaks(BREAKING_LINES, 2, "the list of lines")
    await must_raise(InjectedFailure, call(create_invoice, conn, 7, lines),
                     lambda got: "the list of lines itself failed midway (at its third line), "
                                 f"and create_invoice returned {got!r}. Let the error reach the "
                                 "caller.")
    if conn.is_in_transaction():
        raise Wrong("when something other than the database failed midway (the list of lines "
                    "broke at its third line), the connection was left inside an open "
                    "transaction: your rollback runs only for database errors. Use `async with "
                    "conn.transaction():`, which rolls back whatever exception leaves the block.")
    now = await _counts(observer)
    if now != after_good:
        raise Wrong(f"when the list of lines broke midway, {now[0] - after_good[0]} invoice(s) and "
                    f"{now[1] - after_good[1]} line(s) stayed in the database. Put every insert "
                    "inside one `async with conn.transaction():` block.")
    await _cancelled_midway(conn, observer, create_invoice, after_good)
    return ("committed when complete, twice, with exact totals and generated ids; rolled back "
            "whatever fails midway, a cancellation included.")


async def _ids_still_generated(observer: asyncpg.Connection) -> None:
    """An ordinary insert after the learner's must still get a free id from the sequence: an id
    computed by hand (max + 1) bypasses it, and the next insert collides."""
    try:
        async with observer.transaction():
            new = await observer.fetchval(
                "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (1, now(), 0) "
                "RETURNING invoice_id")
            await observer.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
                "VALUES ($1, 1, 0.99, 1)", new)
            raise _Undo
    except _Undo:
        pass
    except asyncpg.UniqueViolationError as exc:
        raise Wrong("after your invoice, the next ordinary INSERT (one that lets PostgreSQL "
                    f"number the row) failed: {exc.constraint_name or 'a primary key'} was "
                    "already taken. Your code chose an id itself (max + 1 or count(*) + 1, say), bypassing the "
                    "identity sequence, and the sequence will hand out that id again. Let "
                    "PostgreSQL number the rows: leave the id out of the INSERT and read it with "
                    "`RETURNING invoice_id`.") from None


class _Undo(Exception):
    """Rolls back the check's own probe transaction."""


async def _second_invoice(conn: asyncpg.Connection, observer: asyncpg.Connection,
                          create_invoice, first: int) -> None:
    """Called again with other tracks and another customer; every value must be bound."""
    rows = await observer.fetch(
        "SELECT track_id, unit_price FROM track WHERE track_id > 100 AND track_id <> $1 "
        "ORDER BY random() LIMIT 4", PAUSED_TRACK)
    lines = [(r["track_id"], random.randint(1, 3)) for r in rows[:random.randint(2, 4)]]
    lines.append((lines[0][0], random.randint(1, 3)))  # a track twice: two lines, as given
    prices = {r["track_id"]: r["unit_price"] for r in rows}
    total = sum(prices[t] * q for t, q in lines)
    what = f"create_invoice(conn, 42, {lines})"
    log = _QueryLog()
    with conn.query_logger(log):
        try:
            invoice_id = await call(create_invoice, conn, 42, list(lines))
        finally:
            await asyncio.sleep(0)  # asyncpg hands records to loggers with call_soon
    floats = [a for a in log.args if isinstance(a, float)]
    if floats:
        raise Wrong(f"{what} sent the float {floats[0]!r} to the database. Money in binary "
                    "floating point is off by tiny amounts (0.1 + 0.2 != 0.3): keep the "
                    "Decimal values asyncpg returns for numeric, or let SQL compute the total "
                    "(`SELECT sum(unit_price * quantity) ...`).")
    pasted = [v for v in (42, invoice_id, *(t for t, _ in lines))
              if isinstance(v, int) and any(_number_in(q, v) for q in log.queries)]
    if pasted:
        raise Wrong(f"{what}: the value {pasted[0]} is inside the text of your SQL, so it was "
                    "formatted into the query. Bind every value ($1, $2, ...) and pass it as an "
                    "argument, numbers included.")
    if conn.is_in_transaction():
        raise Wrong(f"called a second time, {what} left its connection inside a transaction.")
    saved = [r["invoice_id"] for r in await observer.fetch(
        "SELECT invoice_id FROM invoice WHERE invoice_id > $1 ORDER BY invoice_id", first)]
    if saved != [invoice_id]:
        raise Wrong(f"called a second time, {what} returned {invoice_id!r}, but the invoices "
                    f"saved since the first call are {saved}: return the new invoice's id "
                    "(RETURNING invoice_id).")
    row = await observer.fetchrow("SELECT customer_id, total FROM invoice WHERE invoice_id = $1",
                                  invoice_id)
    count = await observer.fetchval("SELECT count(*) FROM invoice_line WHERE invoice_id = $1",
                                    invoice_id)
    if count == len({t for t, _ in lines}) < len(lines):
        raise Wrong(f"{what} saved {count} lines for {len(lines)} pairs: track {lines[0][0]} comes "
                    "twice, and each pair is a line of its own. Insert one invoice_line per "
                    "pair, as given (no dict keyed by track).")
    if row["customer_id"] != 42 or row["total"] != total or count != len(lines):
        raise Wrong(f"{what} saved customer {row['customer_id']}, total {row['total']} and "
                    f"{count} line(s); expected customer 42, total {total} and {len(lines)} "
                    "lines. Use the arguments and the track table, nothing fixed.")


def _number_in(sql: str, n: int) -> bool:
    return re.search(rf"(?<![\w.$]){n}(?![\w.])", sql) is not None


async def _cancelled_midway(conn: asyncpg.Connection, observer: asyncpg.Connection,
                            create_invoice, after_good: tuple[int, int]) -> None:
    """Cancel a call while the database inserts track 15's line, as a timeout would."""
    what = f"create_invoice(conn, 7, {PAUSED_LINES})"
    pid = conn.get_server_pid()
    task = asyncio.ensure_future(call(create_invoice, conn, 7, list(PAUSED_LINES)))
    paused = False
    for _ in range(500):  # up to 5 s for the call to reach track 15's line
        if task.done():
            break
        if await observer.fetchval(
                "SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1", pid):
            paused = True
            break
        await asyncio.sleep(0.01)
    task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    if isinstance(outcome, Wrong):
        raise outcome
    if not paused:
        if isinstance(outcome, LearnerError):
            raise outcome
        raise Wrong(f"{what} finished without inserting the line of track {PAUSED_TRACK}: every "
                    "pair must get its line.")
    if isinstance(outcome, LearnerError):
        raise Wrong(f"cancelled while the database inserted a line, {what} raised {outcome} "
                    "instead of letting CancelledError through. Let the cancellation reach the "
                    "caller; `async with conn.transaction():` rolls back and re-raises it.")
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled while the database inserted a line (as a timeout would), {what} "
                    f"returned {outcome!r}: it swallowed the CancelledError, so the caller thinks "
                    "it worked. Let the cancellation reach the caller.")
    if conn.is_in_transaction():
        raise Wrong(f"cancelled midway (as a timeout would), {what} left its connection inside "
                    "the transaction, so every later query on it fails. `except Exception:` does "
                    "not catch a cancellation (CancelledError is a BaseException). Use `async "
                    "with conn.transaction():`, which rolls back whatever leaves the block.")
    now = await _counts(observer)
    if now != after_good:
        raise Wrong(f"cancelled midway, {what} left {now[0] - after_good[0]} invoice(s) and "
                    f"{now[1] - after_good[1]} line(s) in the database. Put every statement "
                    "inside one `async with conn.transaction():` block.")


q3 = Exercise(
    "q3", "create_invoice", _check_create_invoice,
    hints=["Every insert goes inside one `async with conn.transaction():` block: it commits at "
           "the end, or rolls back if an exception leaves the block.",
           "`invoice_id = await conn.fetchval(\"INSERT INTO invoice (customer_id, invoice_date, "
           "total) VALUES ($1, now(), 0) RETURNING invoice_id\", customer_id)`; then one INSERT per "
           "line, and an UPDATE of the total at the end.",
           "For each line, take the price from the track in the same statement: `INSERT INTO "
           "invoice_line (invoice_id, track_id, unit_price, quantity) VALUES ($1, $2, (SELECT "
           "unit_price FROM track WHERE track_id = $2), $3)`. A missing track gives NULL, which "
           "the NOT NULL column refuses."],
    title="An invoice and its lines, all or nothing",
)


# --- q4: concurrent lookups through a pool -------------------------------------------------

POOL_SIZE = 3
SECOND_POOL_SIZE = 5  # a second pool, so that a number of workers fixed in the code shows
SMALL_CASE = [3, 999_999, 1]  # no more ids than connections: a leak cannot hang the check
BIG_CASE = [8, 3, 5, 999_999, 2, 7, 5, 1, 4, 6]
# 2**31 does not fit PostgreSQL's integer: asyncpg raises DataError. Its lookup is among the
# first three to get a connection; the others are still at work, or waiting for one, when it fails.
FAILING_CASE = [1, 2, 2**31, 3, 4, 5, 6, 7]


class _Acquisitions:
    """A pool's `setup=` hook: counts acquisitions and the most connections out at once. It
    holds each acquisition a moment, so that lookups started together are in flight together."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.peak = 0
        self.count = 0
        self.in_setup = 0  # a connection counts as checked out only once its setup is done

    @property
    def in_use(self) -> int:
        return checked_out(self.pool) + self.in_setup

    async def __call__(self, conn: asyncpg.Connection) -> None:
        self.count += 1
        self.in_setup += 1
        try:
            self.peak = max(self.peak, self.in_use)
            await asyncio.sleep(0.02)
            self.peak = max(self.peak, self.in_use)
        finally:
            self.in_setup -= 1


async def _settled(pool: asyncpg.Pool) -> int:
    """Connections still checked out once the other lookups had time to finish (up to 1 s)."""
    for _ in range(100):
        if not checked_out(pool):
            return 0
        await asyncio.sleep(0.01)
    return checked_out(pool)


async def _lookup_case(pool: asyncpg.Pool, seen: _Acquisitions, names: dict[int, str],
                       lookup_many, ids: list[int]) -> None:
    seen.peak = 0
    try:
        got = await call(lookup_many, pool, list(ids))
    except LearnerError as exc:
        if isinstance(exc.__cause__, BaseExceptionGroup):
            raise _group_opened(exc.__cause__, ids) from None
        raise
    if left := checked_out(pool):
        raise Wrong(f"{left} connection(s) were still checked out after lookup_many "
                    "returned: each acquire needs its release. Use `async with "
                    "pool.acquire() as conn:`, which releases even on error.")
    expected = [names.get(i) for i in ids]
    if not isinstance(got, list):
        raise Wrong(f"lookup_many should return a list of names, not {type(got).__name__}.")
    if any(inspect.iscoroutine(item) for item in got):
        for item in got:
            if inspect.iscoroutine(item):
                item.close()
        raise Wrong("your list holds coroutine objects, not names: did you forget `await`?")
    if got != expected:
        if sorted(map(str, got)) == sorted(map(str, expected)):
            raise Wrong(f"lookup_many(pool, {ids}) returned the right names in another order; "
                        "keep the input order (a TaskGroup's tasks in a list, or gather, keep "
                        "it).")
        raise Wrong(f"lookup_many(pool, {ids}) returned {got!r}; expected {expected!r} (None for "
                    "a track that does not exist).")
    wanted = min(pool.get_max_size(), len(ids))
    if len(ids) > 1 and seen.peak < 2:
        raise Wrong(f"the lookups ran one at a time (at most {seen.peak} connection in use). "
                    "Start them all at once, each task acquiring its own connection from the "
                    "pool.")
    if seen.peak < wanted:
        raise Wrong(f"lookup_many(pool, {ids}) kept at most {seen.peak} connections at work, "
                    f"though the pool has {pool.get_max_size()} and there were {len(ids)} ids: a "
                    "fixed number of workers leaves the others idle. Start one task per id and "
                    "let the pool hand out what it has (it never gives more than max_size).")


def _group_opened(group: BaseExceptionGroup, ids: list[int]) -> Wrong:
    """Say what a TaskGroup's ExceptionGroup holds, rather than only that it was raised."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        inner = inner.exceptions[0]
    shown = f"lookup_many(pool, {ids}) raised an ExceptionGroup holding {type(inner).__name__}: {inner}"
    if isinstance(inner, TypeError) and "'NoneType'" in str(inner) and 999_999 in ids:
        return Wrong(f"{shown}. Track 999999 does not exist: fetchrow returns None for it, and "
                     "reading a column from None raises that TypeError. Give None for a missing "
                     "track: fetchval returns None when no row matches (or test the row for None).")
    return Wrong(f"{shown}. One lookup failed, and the TaskGroup passed its error on; only a "
                 "real failure may escape (a missing track gives None).")


def _lookups_still_running(before: set[asyncio.Task]) -> int:
    """Tasks the answer started that are still running now, leaving out asyncpg's own (a
    cancelled lookup's connection is handed back, and the pool refilled, in the background)."""
    return sum(1 for task in asyncio.all_tasks() - before
               if not task.done() and not _is_asyncpgs(task))


def _is_asyncpgs(task: asyncio.Task) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/asyncpg/" in code.co_filename.replace("\\", "/")  # the package


async def _failing_case(pool: asyncpg.Pool, seen: _Acquisitions, lookup_many) -> None:
    before = asyncio.all_tasks()
    try:
        got = await call(lookup_many, pool, list(FAILING_CASE))
    except LearnerError as exc:
        cause = exc.__cause__
        data_error = isinstance(cause, asyncpg.DataError) or (
            isinstance(cause, BaseExceptionGroup) and cause.subgroup(asyncpg.DataError) is not None)
        if not data_error:
            raise
    else:
        raise Wrong(f"lookup_many(pool, {FAILING_CASE}) returned {got!r}, but track id {2**31} "
                    "does not fit PostgreSQL's integer and its lookup raises asyncpg.DataError: "
                    "let the error reach the caller.")
    running = seen.in_use
    acquired = seen.count
    still_running = _lookups_still_running(before)
    if left := await _settled(pool):
        raise Wrong(f"when one lookup failed (track id {2**31} is too large for an integer), "
                    f"{left} connection(s) stayed checked out for good: the failing task never "
                    "gave its connection back. Use `async with pool.acquire() as conn:`, which "
                    "releases even on error (or put pool.release in a finally: block).")
    # The proof is in the tasks and the pool: lookups still running when the error reached the
    # caller, or acquiring connections afterwards. (Connections merely in use at that instant are
    # not: a TaskGroup's cancelled lookups may still be handing theirs back on a busy machine.)
    if still_running or seen.count > acquired:
        raise Wrong(f"when one lookup failed, lookup_many raised while the other lookups were "
                    f"still running ({running} connection(s) in use, "
                    f"{seen.count - acquired} more acquired afterwards). Plain gather does that: "
                    "it raises the first error and leaves the rest running (lesson 02). Use a "
                    "TaskGroup, which cancels the others and waits for them before the error "
                    "reaches the caller.")


async def _check_lookup_many(lookup_many) -> str:
    db = await fresh_postgres("check_04_q4")
    pools: list[asyncpg.Pool] = []
    try:
        names = None
        for size in (POOL_SIZE, SECOND_POOL_SIZE):
            seen = _Acquisitions()
            pool = await asyncpg.create_pool(db.dsn, min_size=size, max_size=size, setup=seen)
            seen.pool = pool
            pools.append(pool)
            if names is None:
                names = dict(await pool.fetch("SELECT track_id, name FROM track"))
            if size == POOL_SIZE:
                for ids in (SMALL_CASE, BIG_CASE, []):
                    await _lookup_case(pool, seen, names, lookup_many, ids)
                await _failing_case(pool, seen, lookup_many)
            else:
                ids = random.sample(range(1, 3504), 12) + [999_999]
                random.shuffle(ids)
                await _lookup_case(pool, seen, names, lookup_many, ids)
        return (f"as many connections at work as the pool has ({POOL_SIZE}, then "
                f"{SECOND_POOL_SIZE}), none leaked; on an error, nothing left running.")
    finally:
        for pool in pools:
            await close_pool(pool)
        await drop_postgres(db)


q4 = Exercise(
    "q4", "lookup_many", _check_lookup_many,
    hints=["Write a small `async def one(track_id)` that acquires a connection, asks for the "
           "name, and gives the connection back.",
           "Inside it: `async with pool.acquire() as conn: return await conn.fetchval(\"SELECT name "
           "FROM track WHERE track_id = $1\", track_id)`. fetchval gives None when no row matches.",
           "`async with asyncio.TaskGroup() as tg: tasks = [tg.create_task(one(i)) for i in "
           "track_ids]`, then `return [task.result() for task in tasks]`: the lookups run "
           "together, the list keeps the input order, the pool never hands out more than "
           "max_size, and if one lookup fails the group cancels the others and waits for them "
           "before raising."],
    title="Concurrent lookups through a pool",
)


# --- q5: price changes, each in its own savepoint ------------------------------------------

RULES_DDL = """
    ALTER TABLE track ADD CONSTRAINT track_price_positive CHECK (unit_price > 0);
    CREATE FUNCTION course_lock_track_13() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = 13 THEN
            RAISE EXCEPTION 'track 13 is locked (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER lock_track_13 BEFORE UPDATE ON track
        FOR EACH ROW EXECUTE FUNCTION course_lock_track_13();
"""

PRICE_CHANGES = [  # not in id order: the ids come back in this order, not sorted
    (5, Decimal("0.79")),
    (1, Decimal("1.49")),
    (2, Decimal("-0.50")),            # refused: the CHECK constraint
    (3, Decimal("1.29")),
    (13, Decimal("0.89")),            # refused: the trigger
    (4, Decimal("1000000000.00")),    # refused: too large for numeric(10, 2)
    (999_999, Decimal("0.99")),       # no such track: the UPDATE changes no row
]
APPLIED = [5, 1, 3]
MISSING_TRACK = 999_999
PAUSE_UPDATE_15 = f"""
    CREATE FUNCTION course_pause_update_{PAUSED_TRACK}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = {PAUSED_TRACK} THEN
            PERFORM pg_sleep(10);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER pause_update_{PAUSED_TRACK} BEFORE UPDATE ON track
        FOR EACH ROW EXECUTE FUNCTION course_pause_update_{PAUSED_TRACK}();
"""
PAUSED_CHANGES = [(19, Decimal("0.59")), (PAUSED_TRACK, Decimal("0.69")), (20, Decimal("0.79"))]
FAILING_CALL_CHANGES = [(16, Decimal("1.11")), (17, Decimal("1.12")), (18, Decimal("1.13"))]


class _FailingUpdates:
    """The connection, except that its second UPDATE fails with an error that is not a refusal
    by the database (as a bug, or a broken network, would): everything else is forwarded. An
    UPDATE counts however it runs: through the connection's own methods, or through a statement
    that `prepare()` returned."""

    QUERIES = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany")

    def __init__(self, conn: asyncpg.Connection, fail_at: int = 2) -> None:
        self._conn = conn
        self._fail_at = fail_at
        self.updates = 0
        self.fired = False

    def counted(self, sql: Any) -> None:
        """Count an UPDATE about to run, and fail the one at fail_at."""
        if "update" in str(sql).lower():
            self.updates += 1
            if self.updates == self._fail_at:
                self.fired = True
                raise InjectedFailure("the connection failed during an UPDATE (a failure "
                                      "injected by the check, not a refusal)")

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._conn, name)
        if name == "prepare":
            async def prepare(sql: Any, *args: Any, **kwargs: Any) -> _FailingStatement:
                return _FailingStatement(self, sql, await target(sql, *args, **kwargs))
            return prepare
        if name not in self.QUERIES:
            return target

        async def query(sql: Any, *args: Any, **kwargs: Any) -> Any:
            self.counted(sql)
            return await target(sql, *args, **kwargs)

        query.__name__ = query.__qualname__ = name
        return query


class _FailingStatement:
    """A prepared statement whose runs are counted by its _FailingUpdates connection."""

    RUNS = ("executemany", "fetch", "fetchrow", "fetchval", "fetchmany")

    def __init__(self, failing: _FailingUpdates, sql: Any, stmt: Any) -> None:
        self._failing = failing
        self._sql = sql
        self._stmt = stmt

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._stmt, name)
        if name not in self.RUNS:
            return target

        async def run(*args: Any, **kwargs: Any) -> Any:
            self._failing.counted(self._sql)
            return await target(*args, **kwargs)

        run.__name__ = run.__qualname__ = name
        return run


def _changes_that_break() -> Iterator[tuple[int, Decimal]]:
    return breaks_after([(6, Decimal("1.11")), (7, Decimal("1.12"))], "the list of changes")


async def _prices(observer: asyncpg.Connection, ids: list[int]) -> dict[int, Decimal]:
    rows = await observer.fetch("SELECT track_id, unit_price FROM track WHERE track_id = any($1::int[])",
                                ids)
    return dict(rows)


async def _check_apply_price_changes(apply_price_changes) -> str:
    db = await fresh_postgres("check_04_q5")
    try:
        conn = await asyncpg.connect(db.dsn)
        observer = await asyncpg.connect(db.dsn)
        try:
            await conn.execute(RULES_DDL + PAUSE_UPDATE_15)
            return await _price_cases(conn, observer, apply_price_changes)
        finally:
            await observer.close()
            await conn.close()
    finally:
        await drop_postgres(db)


async def _price_cases(conn: asyncpg.Connection, observer: asyncpg.Connection, apply_price_changes) -> str:
    ids = [track_id for track_id, _ in PRICE_CHANGES]
    old = await _prices(observer, ids)
    try:
        applied = await call(apply_price_changes, conn, list(PRICE_CHANGES))
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, asyncpg.InFailedSQLTransactionError):
            raise Wrong("a statement ran after a failed one in the same transaction (\"current "
                        "transaction is aborted\"). Put the try/except *around* the nested `async "
                        "with conn.transaction():`, so the savepoint is rolled back first.") from None
        if isinstance(cause, asyncpg.PostgresError):
            first_line = str(cause).splitlines()[0] if str(cause) else ""
            raise Wrong(f"a refused change stopped everything ({type(cause).__name__}: "
                        f"{first_line}). Skip it instead: catch "
                        "asyncpg.PostgresError around that change's nested transaction.") from None
        raise
    if conn.is_in_transaction():
        raise Wrong("apply_price_changes left its connection inside a transaction: use `async "
                    "with conn.transaction():` for the outer block too, so it commits.")
    if not isinstance(applied, list):
        raise Wrong(f"apply_price_changes should return the list of track_ids it changed, not "
                    f"{type(applied).__name__}.")
    if MISSING_TRACK in applied and [i for i in applied if i != MISSING_TRACK] == APPLIED:
        raise Wrong(f"you returned {applied}, but track {MISSING_TRACK} does not exist: its "
                    "UPDATE changed no row (execute returned 'UPDATE 0'), so it was not changed. "
                    "List only the tracks whose price really changed.")
    if applied != APPLIED:
        refused = [i for i in ids if i not in APPLIED and i != MISSING_TRACK]
        lost = [i for i in APPLIED if i not in applied]
        after_refusal = [i for i in APPLIED if ids.index(i) > ids.index(refused[0])]
        if sorted(applied) == sorted(APPLIED):
            raise Wrong(f"you returned the changed tracks {applied} in another order; return "
                        f"them in the order of `changes`: {APPLIED}.")
        extra = ""
        if lost and lost == after_refusal:
            extra = (f" Tracks {lost} were lost after the first refusal: once a statement fails, "
                     "PostgreSQL refuses everything else in that transaction until a rollback. "
                     "Give each change its own nested `async with conn.transaction():` (a "
                     "savepoint).")
        raise Wrong(f"expected {APPLIED} applied (tracks {refused} are refused by the database); "
                    f"you returned {applied}.{extra}")
    new = await _prices(observer, ids)
    wanted = {i: (price if i in APPLIED else old[i]) for i, price in PRICE_CHANGES if i in old}
    if new != wanted:
        changed = [i for i in ids if i in old and new[i] != old[i]]
        raise Wrong(f"you reported {APPLIED} as applied, but the committed prices changed for "
                    f"{changed}. A failed statement aborts the whole transaction, and COMMIT then "
                    "rolls everything back: isolate each change in a nested `async with "
                    "conn.transaction():`.")

    before = await _prices(observer, [6, 7])
    await must_raise(InjectedFailure, call(apply_price_changes, conn, _changes_that_break()),
                     lambda got: "the list of changes itself failed midway, and "
                                 f"apply_price_changes returned {got!r}. Only refusals from the "
                                 "database are skipped; let other errors propagate (catch "
                                 "asyncpg.PostgresError, not Exception).")
    if conn.is_in_transaction():
        raise Wrong("after an error, the connection was left inside a transaction: use `async "
                    "with conn.transaction():` so it rolls back.")
    if await _prices(observer, [6, 7]) != before:
        raise Wrong("when the list of changes broke midway, the changes made before stayed "
                    "committed. Run the whole loop inside one outer `async with "
                    "conn.transaction():`, so all changes commit together or not at all.")
    injected = await _not_a_refusal(conn, observer, apply_price_changes)
    await _prices_cancelled_midway(conn, observer, apply_price_changes)
    if not injected:
        return ("refused changes skipped, the rest committed together; a broken list of "
                "changes, and a cancellation, undo them all and reach the caller. (An error at "
                "the second UPDATE could not be injected: the check saw fewer than two UPDATEs "
                "run through the connection's methods or a prepared statement.)")
    return ("refused changes skipped, the rest committed together; any other error, and a "
            "cancellation, undo them all and reach the caller.")


async def _not_a_refusal(conn: asyncpg.Connection, observer: asyncpg.Connection,
                         apply_price_changes) -> bool:
    """The connection fails at the second UPDATE with an error that is not the database's
    refusal: it must reach the caller, and nothing may remain. False when the code ran fewer
    than two UPDATEs by the ways the check wraps, so that the error could not be injected."""
    ids = [track_id for track_id, _ in FAILING_CALL_CHANGES]
    before = await _prices(observer, ids)
    failing = _FailingUpdates(conn)
    try:
        got = await call(apply_price_changes, failing, list(FAILING_CALL_CHANGES))
    except LearnerError as exc:
        if not isinstance(exc.__cause__, InjectedFailure):
            raise
    else:
        if failing.fired:
            raise Wrong("the connection's second UPDATE failed with an error that is not a "
                        f"refusal by the database, and apply_price_changes returned {got!r}: it "
                        "skipped that error as if the database had refused the change. Skip only "
                        "the database's refusals (`except asyncpg.PostgresError:`), not every "
                        "Exception; let the rest reach the caller.")
        return False  # no UPDATE failed, so there is nothing more to judge here
    if conn.is_in_transaction():
        raise Wrong("after an error that was not a refusal, the connection was left inside a "
                    "transaction: use `async with conn.transaction():` so it rolls back.")
    if await _prices(observer, ids) != before:
        raise Wrong("when the connection failed at the second UPDATE, the change made before it "
                    "stayed committed. Run the whole loop inside one outer `async with "
                    "conn.transaction():`, so all changes commit together or not at all.")
    return True


async def _prices_cancelled_midway(conn: asyncpg.Connection, observer: asyncpg.Connection,
                                   apply_price_changes) -> None:
    """Cancel a call while the database runs track 15's UPDATE, as a timeout would."""
    ids = [track_id for track_id, _ in PAUSED_CHANGES]
    before = await _prices(observer, ids)
    what = f"apply_price_changes(conn, {[(t, str(p)) for t, p in PAUSED_CHANGES]})"
    pid = conn.get_server_pid()
    task = asyncio.ensure_future(call(apply_price_changes, conn, list(PAUSED_CHANGES)))
    paused = False
    for _ in range(500):  # up to 5 s to reach track 15's UPDATE
        if task.done():
            break
        if await observer.fetchval(
                "SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1", pid):
            paused = True
            break
        await asyncio.sleep(0.01)
    task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    if isinstance(outcome, Wrong):
        raise outcome
    if not paused:
        if isinstance(outcome, LearnerError):
            raise outcome
        raise Wrong(f"{what} finished without updating track {PAUSED_TRACK}: apply every change.")
    if not isinstance(outcome, asyncio.CancelledError):
        shown = outcome if isinstance(outcome, LearnerError) else repr(outcome)
        raise Wrong(f"cancelled while the database ran an UPDATE (as a timeout would), {what} "
                    f"gave {shown} instead of letting the CancelledError through: a cancellation "
                    "is not a refused change. Catch asyncpg.PostgresError only.")
    if conn.is_in_transaction():
        raise Wrong(f"cancelled midway (as a timeout would), {what} left its connection inside "
                    "the transaction: `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException). Use `async with conn.transaction():` "
                    "for the outer block, which rolls back whatever leaves it.")
    if await _prices(observer, ids) != before:
        raise Wrong(f"cancelled midway, {what} left the change made before committed. Run the "
                    "whole loop inside one outer `async with conn.transaction():`.")


q5 = Exercise(
    "q5", "apply_price_changes", _check_apply_price_changes,
    hints=["Two levels: one outer `async with conn.transaction():` around the loop, and one "
           "nested `async with conn.transaction():` around each change. The nested one is a "
           "SAVEPOINT.",
           "Put `try:` outside the nested block and `except asyncpg.PostgresError: continue` "
           "after it: the block rolls back to its savepoint, then the loop goes on.",
           "Inside the nested block: `status = await conn.execute(\"UPDATE track SET unit_price = "
           "$2 WHERE track_id = $1\", track_id, price)`; after the block, `if status == \"UPDATE "
           "1\": applied.append(track_id)` (a missing track gives 'UPDATE 0')."],
    title="Price changes, each in its own savepoint",
)
