"""q3: an invoice and its lines, all or nothing."""

from __future__ import annotations

import re

import aiosqlite

from course.checking.checks import Exercise, LearnerError, Wrong, must_raise
from course.checking.invoices import (
    FAILURES,
    GOOD_LINES,
    MISSING_LINES,
    PAUSED_TRACK,
    one_invoice_added,
    one_line_per_pair,
    random_lines,
)
from course.checking.sql_text import number_in
from course.probes import InjectedFailure, ListThatBreaks

from ._common import (
    _cancelled_midway,
    _closed_given_connection,
    _counts,
    _database,
    _id_taken,
    _is_closed,
    _Pause,
    _rolled_back_if_open,
    _run,
)
from ._watched import _Watched

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
GOOD_TOTAL = 4.96  # of GOOD_LINES
PAUSED_LINES = [(8, 1), (PAUSED_TRACK, 2), (9, 1)]  # cancelled while track 15's line goes in


async def _check_create_invoice(create_invoice) -> str:
    async with _database("check-03-q3") as (db, observer):
        for trigger in (REFUSE_TRACK_13, *REFUSE_BIG_TOTAL):
            await db.execute(trigger)
        await db.executescript(INVOICE_GAPS)
        await db.commit()
        pause = _Pause()
        await pause.install(db, "invoice_line")
        before = await _counts(observer, "invoice", "invoice_line")
        first = await _first_invoice(db, observer, create_invoice)
        one_invoice_added(before, await _counts(observer, "invoice", "invoice_line"))
        await _second_invoice(db, observer, create_invoice, first)
        after_good = await _counts(observer, "invoice", "invoice_line")
        await _failing_invoices(db, observer, create_invoice, after_good)
        await _broken_list(db, observer, create_invoice, after_good)
        what = f"create_invoice(db, 7, {PAUSED_LINES})"
        await _cancelled_midway(
            db, observer, pause, what, (create_invoice, 7, list(PAUSED_LINES)),
            ("invoice", "invoice_line"), after_good,
            pending="with the invoice pending in it: the next commit on this connection would "
                    "save half an invoice",
            kept="{} invoice(s) and {} line(s) in the database. Commit only after the last "
                 "statement,")
    return ("committed when complete, twice; rolled back on any failure, database error or not, "
            "and when cancelled midway.")


# Invoices deleted in the middle: the ids have gaps, so count(*) + 1 is an id already taken.
INVOICE_GAPS = """
    DELETE FROM invoice_line WHERE invoice_id BETWEEN 100 AND 104;
    DELETE FROM invoice WHERE invoice_id BETWEEN 100 AND 104;
"""


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
    """Lines for tracks of Chinook far apart, none that the check refuses or pauses on."""
    rows = await observer.execute_fetchall(
        "SELECT track_id FROM track WHERE track_id NOT IN (13, ?) ORDER BY random() LIMIT 4",
        (PAUSED_TRACK,))
    return random_lines([r[0] for r in rows])


async def _first_invoice(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                         create_invoice) -> int:
    """The example call: committed, its own id returned, its lines priced from the track table."""
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
    return invoice_id


async def _second_invoice(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                          create_invoice, first: int) -> None:
    """Called again, with other tracks: not only the shipped example works, and every value is bound."""
    lines = await _random_lines(observer)
    watch = _Watched(db)
    second = await _run(create_invoice, watch, 42, list(lines))
    pasted = [v for v in (42, second, *(t for t, _ in lines))
              if isinstance(v, int) and any(number_in(sql, v) for sql, _ in watch.statements)]
    if pasted:
        if db.in_transaction:
            await db.rollback()
        raise Wrong(f"create_invoice(db, 42, {lines}): the value {pasted[0]} is inside the text "
                    "of your SQL, so it was formatted into the query. Bind every value with `?` "
                    "and pass it in the parameters, numbers included.")
    if db.in_transaction:
        await db.rollback()
        raise Wrong("called a second time, create_invoice left its transaction open.")
    new = await _new_invoices(observer, first)
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
    one_line_per_pair(count, lines, f"create_invoice(db, 42, {lines})")
    if (row[0] != 42 or not isinstance(row[1], (int, float))
            or abs(row[1] - expected_total) > 0.005 or count != len(lines)):
        raise Wrong(f"create_invoice(db, 42, {lines}) saved customer {row[0]}, total {row[1]!r} "
                    f"and {count} line(s); expected customer 42, total "
                    f"{round(expected_total, 2)} and {len(lines)} lines. Use the arguments and "
                    "the track table, nothing fixed.")


async def _failing_invoices(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                            create_invoice, after_good: tuple[int, ...]) -> None:
    """A refused line, a missing track and a refused total: each call fails, and leaves nothing."""
    for lines, why in FAILURES:
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


async def _broken_list(db: aiosqlite.Connection, observer: aiosqlite.Connection,
                       create_invoice, after_good: tuple[int, ...]) -> None:
    """Not a database error: the lines themselves fail midway, after the invoice's INSERT."""
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
