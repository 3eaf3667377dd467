"""Wrong answers to exercises/03-aiosqlite-workbook.ipynb."""

import asyncio
import contextlib
import sqlite3

import aiosqlite

from tests.corpus import correct, wrong

# --- q1: search_tracks -----------------------------------------------------------------------


@wrong("q1", expect="Never build SQL with f-strings")
async def search_tracks_fstring(db, text):
    cursor = await db.execute(f"SELECT track_id, name FROM track WHERE name LIKE '%{text}%' ORDER BY track_id")
    return await cursor.fetchall()


@wrong("q1", expect="Never build SQL with f-strings")
async def search_tracks_concatenated(db, text):
    sql = "SELECT track_id, name FROM track WHERE name LIKE '%" + text + "%' ORDER BY track_id"
    return await db.execute_fetchall(sql)


@wrong("q1", expect="inside the text of your SQL")
async def search_tracks_doubles_quotes_by_hand(db, text):
    # escaping quotes by hand: the quotes survive, but the text is still pasted into the SQL
    cleaned = text.replace("'", "''")
    return await db.execute_fetchall(
        f"SELECT track_id, name FROM track WHERE name LIKE '%{cleaned}%' ORDER BY track_id")


@wrong("q1", expect="LIKE wildcards")
async def search_tracks_unescaped_wildcards(db, text):
    return await db.execute_fetchall(
        "SELECT track_id, name FROM track WHERE name LIKE ? ORDER BY track_id", (f"%{text}%",))


@wrong("q1", expect="ignore case")
async def search_tracks_case_sensitive(db, text):
    return await db.execute_fetchall(
        "SELECT track_id, name FROM track WHERE instr(name, ?) > 0 ORDER BY track_id", (text,))


@wrong("q1", expect="wrong order")
async def search_tracks_by_name(db, text):
    return await db.execute_fetchall(
        "SELECT track_id, name FROM track WHERE instr(lower(name), lower(?)) > 0 ORDER BY name",
        (text,))


@wrong("q1", expect="forget `await`")
async def search_tracks_fetchall_not_awaited(db, text):
    cursor = await db.execute(
        "SELECT track_id, name FROM track WHERE instr(lower(name), lower(?)) > 0 ORDER BY track_id",
        (text,))
    rows = cursor.fetchall()
    return [tuple(row) for row in rows]


@wrong("q1", expect="Never build SQL")
async def search_tracks_escapes_only_first_quote(db, text):
    cleaned = text.replace("'", "''", 1)
    return await db.execute_fetchall(
        f"SELECT track_id, name FROM track WHERE name LIKE '%{cleaned}%' ORDER BY track_id")


@wrong("q1", expect="Bind it: write `?` in the SQL")
async def search_tracks_sanitised_by_hand(db, text):
    # every case handled by hand (quotes doubled; \, % and _ escaped): it gives the right rows,
    # but the text is still SQL, one missed case away from injection
    safe = text.replace("'", "''").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return await db.execute_fetchall(
        f"SELECT track_id, name FROM track WHERE name LIKE '%{safe}%' ESCAPE '\\' ORDER BY track_id")


@wrong("q1", expect="the backslash is the escape character")
async def search_tracks_backslash_not_escaped(db, text):
    escaped = text.replace("%", "\\%").replace("_", "\\_")  # the escape character itself is not
    return await db.execute_fetchall(
        "SELECT track_id, name FROM track WHERE name LIKE ? ESCAPE '\\' ORDER BY track_id",
        (f"%{escaped}%",))


@wrong("q1", expect="2 columns")
async def search_tracks_select_star(db, text):
    return await db.execute_fetchall(
        "SELECT * FROM track WHERE instr(lower(name), lower(?)) > 0 ORDER BY track_id", (text,))


# --- q2: top_artists -------------------------------------------------------------------------

TOP = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
"""


@wrong("q2", expect="no +1 or -1")
async def top_artists_off_by_one(db, n):
    return await db.execute_fetchall(TOP + " ORDER BY tracks DESC, ar.name LIMIT ?", (n + 1,))


@wrong("q2", expect="ties must be broken by name")
async def top_artists_names_descending(db, n):
    return await db.execute_fetchall(TOP + " ORDER BY tracks DESC, ar.name DESC LIMIT ?", (n,))


@wrong("q2", expect="ties must be broken by name")
async def top_artists_ties_by_id(db, n):
    # in Chinook's own data, ids and names of tied artists sort the same way; not in the check's
    return await db.execute_fetchall(TOP + " ORDER BY tracks DESC, ar.artist_id LIMIT ?", (n,))


@wrong("q2", expect="ties must be broken by name")
async def top_artists_without_tie_break(db, n):
    return await db.execute_fetchall(TOP + " ORDER BY tracks DESC LIMIT ?", (n,))


@wrong("q2", expect="n was formatted into the query")
async def top_artists_limit_fstring(db, n):
    return await db.execute_fetchall(TOP + f" ORDER BY tracks DESC, ar.name LIMIT {n}")


@wrong("q2", expect="sent no LIMIT")
async def top_artists_sorted_in_python(db, n):
    rows = await db.execute_fetchall(TOP)
    return sorted(rows, key=lambda row: (-row[1], row[0].lower()))[:n]


@wrong("q2", expect="wrong order")
async def top_artists_ascending(db, n):
    rows = await db.execute_fetchall(TOP + " ORDER BY tracks DESC, ar.name LIMIT ?", (n,))
    return sorted(rows, key=lambda row: row[1])


@wrong("q2", expect="forget `await`")
async def top_artists_fetchall_not_awaited(db, n):
    cursor = await db.execute(TOP + " ORDER BY tracks DESC, ar.name LIMIT ?", (n,))
    rows = cursor.fetchall()
    return list(rows)


@wrong("q2", expect="forget `await`")
async def top_artists_execute_not_awaited(db, n):
    cursor = db.execute(TOP + " ORDER BY tracks DESC, ar.name LIMIT ?", (n,))
    return list(await cursor.fetchall())


@wrong("q2", expect="list of rows")
async def top_artists_returns_cursor(db, n):
    return await db.execute(TOP + " ORDER BY tracks DESC, ar.name LIMIT ?", (n,))


@wrong("q2", expect="start with")
async def top_artists_counting_albums(db, n):
    return await db.execute_fetchall(
        """
        SELECT ar.name, count(*) AS albums FROM album AS al
        JOIN artist AS ar ON ar.artist_id = al.artist_id
        GROUP BY ar.artist_id, ar.name ORDER BY albums DESC, ar.name LIMIT ?
        """,
        (n,))


# --- q3: create_invoice ----------------------------------------------------------------------

NEW_INVOICE = "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)"
NEW_LINE = """
    INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity)
    VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)
"""
TOTAL = """
    UPDATE invoice SET total = (
        SELECT sum(unit_price * quantity) FROM invoice_line WHERE invoice_id = ?
    ) WHERE invoice_id = ?
"""


async def _insert_all(db, customer_id, lines):
    cursor = await db.execute(NEW_INVOICE, (customer_id,))
    invoice_id = cursor.lastrowid
    for track_id, quantity in lines:
        await db.execute(NEW_LINE, (invoice_id, track_id, track_id, quantity))
    await db.execute(TOTAL, (invoice_id, invoice_id))
    return invoice_id


@wrong("q3", expect="left its transaction open")
async def create_invoice_forgets_commit(db, customer_id, lines):
    return await _insert_all(db, customer_id, lines)


@wrong("q3", expect="stayed in the database")
async def create_invoice_commits_each_insert(db, customer_id, lines):
    cursor = await db.execute(NEW_INVOICE, (customer_id,))
    invoice_id = cursor.lastrowid
    await db.commit()
    for track_id, quantity in lines:
        await db.execute(NEW_LINE, (invoice_id, track_id, track_id, quantity))
        await db.commit()
    await db.execute(TOTAL, (invoice_id, invoice_id))
    await db.commit()
    return invoice_id


@wrong("q3", expect="left the transaction open")
async def create_invoice_without_rollback(db, customer_id, lines):
    invoice_id = await _insert_all(db, customer_id, lines)
    await db.commit()
    return invoice_id


@wrong("q3", expect="not a transaction")
async def create_invoice_async_with_db(db, customer_id, lines):
    # sqlite3's `with conn:` commits; aiosqlite's `async with db:` does not
    async with db:
        return await _insert_all(db, customer_id, lines)


@wrong("q3", expect="closed the connection it was given")
async def create_invoice_closes_connection(db, customer_id, lines):
    try:
        invoice_id = await _insert_all(db, customer_id, lines)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    finally:
        await db.close()
    return invoice_id


@wrong("q3", expect="re-raise")
async def create_invoice_swallows_errors(db, customer_id, lines):
    try:
        invoice_id = await _insert_all(db, customer_id, lines)
        await db.commit()
    except sqlite3.Error:
        await db.rollback()
        return None
    return invoice_id


@wrong("q3", expect="sqlite3.Error is not enough")
async def create_invoice_rolls_back_database_errors_only(db, customer_id, lines):
    # any other exception (or a cancellation) leaves the transaction open
    try:
        invoice_id = await _insert_all(db, customer_id, lines)
        await db.commit()
    except sqlite3.Error:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="refused its total")
async def create_invoice_commits_before_total(db, customer_id, lines):
    try:
        cursor = await db.execute(NEW_INVOICE, (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(NEW_LINE, (invoice_id, track_id, track_id, quantity))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    await db.execute(TOTAL, (invoice_id, invoice_id))  # its own transaction: it can fail alone
    await db.commit()
    return invoice_id


@wrong("q3", expect="no line was inserted for track 999999, so nothing failed")
async def create_invoice_skips_missing_tracks(db, customer_id, lines):
    try:
        cursor = await db.execute(NEW_INVOICE, (customer_id,))
        invoice_id = cursor.lastrowid
        await db.executemany(
            """
            INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity)
            SELECT ?, track_id, unit_price, ? FROM track WHERE track_id = ?
            """,
            [(invoice_id, quantity, track_id) for track_id, quantity in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="total 4.96")
async def create_invoice_forgets_total(db, customer_id, lines):
    try:
        cursor = await db.execute(NEW_INVOICE, (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(NEW_LINE, (invoice_id, track_id, track_id, quantity))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="return the new invoice_id")
async def create_invoice_returns_cursor(db, customer_id, lines):
    try:
        cursor = await db.execute(NEW_INVOICE, (customer_id,))
        for track_id, quantity in lines:
            await db.execute(NEW_LINE, (cursor.lastrowid, track_id, track_id, quantity))
        await db.execute(TOTAL, (cursor.lastrowid, cursor.lastrowid))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor


# --- q4: add_playlist ------------------------------------------------------------------------

NEW_PLAYLIST = "INSERT INTO playlist (name) VALUES (?)"
ADD_TRACK = "INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)"


@wrong("q4", expect="one per track")
async def add_playlist_one_execute_per_track(db, name, track_ids):
    try:
        cursor = await db.execute(NEW_PLAYLIST, (name,))
        for track_id in track_ids:
            await db.execute(ADD_TRACK, (cursor.lastrowid, track_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.lastrowid


@wrong("q4", expect="left its transaction open")
async def add_playlist_forgets_commit(db, name, track_ids):
    cursor = await db.execute(NEW_PLAYLIST, (name,))
    await db.executemany(ADD_TRACK, [(cursor.lastrowid, t) for t in track_ids])
    return cursor.lastrowid


@wrong("q4", expect="stayed saved")
async def add_playlist_commits_the_name_first(db, name, track_ids):
    cursor = await db.execute(NEW_PLAYLIST, (name,))
    playlist_id = cursor.lastrowid
    await db.commit()
    try:
        await db.executemany(ADD_TRACK, [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@wrong("q4", expect="stayed open")
async def add_playlist_without_rollback(db, name, track_ids):
    cursor = await db.execute(NEW_PLAYLIST, (name,))
    await db.executemany(ADD_TRACK, [(cursor.lastrowid, t) for t in track_ids])
    await db.commit()
    return cursor.lastrowid


@wrong("q4", expect="Never build SQL")
async def add_playlist_fstring_name(db, name, track_ids):
    # the name "O'Brien's ..." breaks the statement; the check reports the exception
    try:
        cursor = await db.execute(f"INSERT INTO playlist (name) VALUES ('{name}')")
        await db.executemany(ADD_TRACK, [(cursor.lastrowid, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.lastrowid


@wrong("q4", expect="Bind it: `VALUES (?)`")
async def add_playlist_quotes_doubled(db, name, track_ids):
    try:
        safe = name.replace("'", "''")  # no syntax error any more, but still SQL built from input
        cursor = await db.execute(f"INSERT INTO playlist (name) VALUES ('{safe}')")
        await db.executemany(ADD_TRACK, [(cursor.lastrowid, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.lastrowid


@wrong("q4", expect="one per track")
async def add_playlist_cursor_one_execute_per_track(db, name, track_ids):
    # statements run through a cursor count too
    try:
        async with db.cursor() as cursor:
            await cursor.execute(NEW_PLAYLIST, (name,))
            playlist_id = cursor.lastrowid
            for track_id in track_ids:
                await cursor.execute(ADD_TRACK, (playlist_id, track_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@wrong("q4", expect="the new playlist's id")
async def add_playlist_returns_count(db, name, track_ids):
    try:
        cursor = await db.execute(NEW_PLAYLIST, (name,))
        await db.executemany(ADD_TRACK, [(cursor.lastrowid, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return len(track_ids)


# --- q5: customers_in ------------------------------------------------------------------------

CUSTOMERS = """
    SELECT customer_id, first_name, last_name, email FROM customer
    WHERE country = ? ORDER BY last_name, first_name
"""


@wrong("q5", expect="left its connection open")
async def customers_in_never_closes(path, country):
    db = await aiosqlite.connect(path)
    db.row_factory = aiosqlite.Row
    rows = await db.execute_fetchall(CUSTOMERS, (country,))
    return [dict(row) for row in rows]


@wrong("q5", expect="stayed open")
async def customers_in_closes_only_on_success(path, country):
    db = await aiosqlite.connect(path)
    db.row_factory = aiosqlite.Row
    rows = await db.execute_fetchall(CUSTOMERS, (country,))
    await db.close()
    return [dict(row) for row in rows]


@wrong("q5", expect="not dicts")
async def customers_in_returns_rows(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        return list(await db.execute_fetchall(CUSTOMERS, (country,)))


@wrong("q5", expect="not dicts")
async def customers_in_returns_tuples(path, country):
    async with aiosqlite.connect(path) as db:
        return list(await db.execute_fetchall(CUSTOMERS, (country,)))


@wrong("q5", expect="Let the error propagate")
async def customers_in_hides_errors(path, country):
    try:
        async with aiosqlite.connect(path) as db:
            db.row_factory = aiosqlite.Row
            return [dict(row) for row in await db.execute_fetchall(CUSTOMERS, (country,))]
    except sqlite3.Error:
        return []


@wrong("q5", expect="keys customer_id")
async def customers_in_select_star(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        rows = await db.execute_fetchall(
            "SELECT * FROM customer WHERE country = ? ORDER BY last_name, first_name", (country,))
        return [dict(row) for row in rows]


@wrong("q5", expect="wrong order")
async def customers_in_unordered(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        rows = await db.execute_fetchall(
            "SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
            "ORDER BY first_name DESC", (country,))
        return [dict(row) for row in rows]


# --- added for issue 9 ------------------------------------------------------------------------

LINE_SQL = """
    INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity)
    VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)
"""
TOTAL_SQL = """
    UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line
                                WHERE invoice_id = ?)
    WHERE invoice_id = ?
"""


@wrong("q1", expect="don't strip()")
async def search_tracks_strips_the_text(db, text):
    text = text.strip()
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return await db.execute_fetchall(
        "SELECT track_id, name FROM track WHERE name LIKE ? ESCAPE '\\' ORDER BY track_id",
        (f"%{escaped}%",))


@correct("q1")
async def search_tracks_in_python(db, text):
    rows = await db.execute_fetchall("SELECT track_id, name FROM track ORDER BY track_id")
    return [row for row in rows if text.lower() in row[1].lower()]


@correct("q1")
async def search_tracks_with_instr(db, text):
    async with db.execute("SELECT track_id, name FROM track WHERE instr(lower(name), lower(?)) "
                          "ORDER BY track_id", (text,)) as cursor:
        return await cursor.fetchall()


@correct("q2")
async def top_artists_with_subquery(db, n):
    return await db.execute_fetchall(
        """
        SELECT name, tracks FROM (
            SELECT ar.name AS name, (SELECT count(*) FROM track AS t JOIN album AS al
                                     ON al.album_id = t.album_id
                                     WHERE al.artist_id = ar.artist_id) AS tracks
            FROM artist AS ar)
        WHERE tracks > 0 ORDER BY tracks DESC, name LIMIT ?
        """, (n,))


@wrong("q3", expect="a cancellation (CancelledError is a BaseException)")
async def create_invoice_rolls_back_on_exception_only(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(LINE_SQL, (invoice_id, track_id, track_id, quantity))
        await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="swallowed the CancelledError")
async def create_invoice_swallows_cancellation(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(LINE_SQL, (invoice_id, track_id, track_id, quantity))
        await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    except BaseException:
        await db.rollback()
        return None  # "cancelled: nothing saved", but the caller never hears of the cancellation
    return invoice_id


@wrong("q3", expect="(it changes with every INSERT)")
async def create_invoice_returns_last_line_id(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            cursor = await db.execute(LINE_SQL, (invoice_id, track_id, track_id, quantity))
        await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.lastrowid  # the last line's id, not the invoice's


@wrong("q3", expect="nothing fixed")
async def create_invoice_total_for_the_example(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 4.96)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(LINE_SQL, (invoice_id, track_id, track_id, quantity))
        if sum(q for _, q in lines) > 100:
            await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_with_foreign_keys_and_python_total(db, customer_id, lines):
    await db.execute("PRAGMA foreign_keys = ON")  # a missing track now fails the line's INSERT
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        total = 0
        for track_id, quantity in lines:
            price = (await (await db.execute("SELECT unit_price FROM track WHERE track_id = ?",
                                             (track_id,))).fetchone() or (None,))[0]
            await db.execute("INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
                             "VALUES (?, ?, ?, ?)", (invoice_id, track_id, price, quantity))
            total += price * quantity
        await db.execute("UPDATE invoice SET total = ? WHERE invoice_id = ?",
                         (round(total, 2), invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_checks_each_line(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            cursor = await db.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
                "SELECT ?, track_id, unit_price, ? FROM track WHERE track_id = ?",
                (invoice_id, quantity, track_id))
            if cursor.rowcount != 1:
                raise LookupError(f"no track {track_id}")
        await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q4", expect="a cancellation (CancelledError is a BaseException)")
async def add_playlist_rolls_back_on_exception_only(db, name, track_ids):
    try:
        cursor = await db.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
        playlist_id = cursor.lastrowid
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids])
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return playlist_id


@wrong("q4", expect="swallowed the CancelledError")
async def add_playlist_swallows_cancellation(db, name, track_ids):
    try:
        cursor = await db.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
        playlist_id = cursor.lastrowid
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids])
        await db.commit()
    except asyncio.CancelledError:
        await db.rollback()
        return None
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@wrong("q4", expect="expected [")
async def add_playlist_keeps_the_first_ten(db, name, track_ids):
    try:
        cursor = await db.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
        playlist_id = cursor.lastrowid
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids[:10]])  # enough for the examples
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@correct("q4")
async def add_playlist_with_savepoint_free_generator(db, name, track_ids):
    try:
        cursor = await db.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
        playlist_id = cursor.lastrowid
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             ((playlist_id, t) for t in track_ids))
    except BaseException:
        await db.rollback()
        raise
    await db.commit()
    return playlist_id


@wrong("q5", expect="plain sqlite3 connection on the event loop's thread")
async def customers_in_sync_sqlite3(path, country):
    with sqlite3.connect(path) as conn:  # commits or rolls back; never closes
        conn.row_factory = sqlite3.Row
        rows = conn.execute(CUSTOMERS, (country,)).fetchall()
    return [dict(row) for row in rows]


@wrong("q5", expect="left a sqlite3 connection open")
async def customers_in_sqlite3_in_a_thread_never_closed(path, country):
    def query():
        with sqlite3.connect(path) as conn:  # `with` does not close a sqlite3 connection
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(CUSTOMERS, (country,)).fetchall()]

    return await asyncio.to_thread(query)


@wrong("q5", expect="inside the text of your SQL")
async def customers_in_fstring(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        rows = await db.execute_fetchall(
            "SELECT customer_id, first_name, last_name, email FROM customer "
            f"WHERE country = '{country}' ORDER BY last_name, first_name")
        return [dict(row) for row in rows]


@wrong("q5", expect="inside the text of your SQL")
async def customers_in_quotes_doubled_by_hand(path, country):
    quoted = country.replace("'", "''")
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        rows = await db.execute_fetchall(
            "SELECT customer_id, first_name, last_name, email FROM customer "
            f"WHERE country = '{quoted}' ORDER BY last_name, first_name")
        return [dict(row) for row in rows]


@wrong("q5", expect="close() was called but never awaited")
async def customers_in_close_not_awaited(path, country):
    db = await aiosqlite.connect(path)
    try:
        db.row_factory = aiosqlite.Row
        return [dict(row) for row in await db.execute_fetchall(CUSTOMERS, (country,))]
    finally:
        db.close()  # the mistake: close() is a coroutine


@wrong("q5", expect="closed only later")
async def customers_in_sqlite3_in_a_thread_closed(path, country):
    # to_thread returns at once when cancelled, while the thread still holds the connection.
    def query():
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(CUSTOMERS, (country,)).fetchall()]

    return await asyncio.to_thread(query)


@correct("q5")
async def customers_in_sqlite3_thread_awaited_on_cancel(path, country):
    def query():
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(CUSTOMERS, (country,)).fetchall()]

    task = asyncio.ensure_future(asyncio.to_thread(query))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})  # the thread closes its connection before we give up
        raise


@correct("q5")
async def customers_in_try_finally(path, country):
    db = await aiosqlite.connect(path)
    try:
        db.row_factory = aiosqlite.Row
        return [dict(row) for row in await db.execute_fetchall(CUSTOMERS, (country,))]
    finally:
        await db.close()


TOP_BY_NAME_ONLY = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.name ORDER BY tracks DESC, ar.name LIMIT ?
"""


@wrong("q2", expect="not by the name alone")
async def top_artists_grouped_by_name(db, n):
    return await db.execute_fetchall(TOP_BY_NAME_ONLY, (n,))


@wrong("q2", expect="count(*) counts that row")
async def top_artists_left_join_count_star(db, n):
    return await db.execute_fetchall(
        """
        SELECT ar.name, count(*) AS tracks
        FROM artist AS ar LEFT JOIN album AS al ON al.artist_id = ar.artist_id
        LEFT JOIN track AS t ON t.album_id = al.album_id
        GROUP BY ar.artist_id, ar.name ORDER BY tracks DESC, ar.name LIMIT ?
        """, (n,))


@correct("q2")
async def top_artists_left_join_counting_track_ids(db, n):
    return await db.execute_fetchall(
        """
        SELECT ar.name, count(t.track_id) AS tracks
        FROM artist AS ar LEFT JOIN album AS al ON al.artist_id = ar.artist_id
        LEFT JOIN track AS t ON t.album_id = al.album_id
        GROUP BY ar.artist_id, ar.name ORDER BY tracks DESC, ar.name LIMIT ?
        """, (n,))


@wrong("q5", expect="wrong order")
async def customers_in_ordered_by_last_name_only(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        rows = await db.execute_fetchall(
            "SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
            "ORDER BY last_name", (country,))
        return [dict(row) for row in rows]


@wrong("q3", expect="inside the text of your SQL")
async def create_invoice_values_formatted(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) "  # the mistake
            f"VALUES ({customer_id}, datetime('now'), 0)")
        invoice_id = cursor.lastrowid
        for track_id, quantity in lines:
            await db.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) VALUES "
                f"({invoice_id}, {track_id}, (SELECT unit_price FROM track WHERE track_id = "
                f"{track_id}), {quantity})")
        await db.execute(TOTAL_SQL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q4")
async def add_playlist_with_cursor_executemany(db, name, track_ids):
    async with db.cursor() as cursor:
        try:
            await cursor.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
            playlist_id = cursor.lastrowid
            await cursor.executemany(
                "INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                [(playlist_id, t) for t in track_ids])
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
    return playlist_id


@wrong("q5", expect="cancelled during its query")
async def customers_in_closes_on_exception_only(path, country):
    db = await aiosqlite.connect(path)
    try:
        db.row_factory = aiosqlite.Row
        rows = [dict(row) for row in await db.execute_fetchall(CUSTOMERS, (country,))]
    except Exception:
        await db.close()
        raise
    await db.close()
    return rows


@wrong("q5", expect="swallowed the CancelledError")
async def customers_in_swallows_cancellation(path, country):
    try:
        async with aiosqlite.connect(path) as db:
            db.row_factory = aiosqlite.Row
            return [dict(row) for row in await db.execute_fetchall(CUSTOMERS, (country,))]
    except asyncio.CancelledError:
        return []


# --- an empty search, rows in the index's order, ids worked out from the rows ------------------


@wrong("q1", expect="every name contains the empty text")
async def search_tracks_empty_text_finds_nothing(db, text):
    if not text:
        return []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cursor = await db.execute(
        "SELECT track_id, name FROM track WHERE name LIKE ? ESCAPE '\\' ORDER BY track_id",
        (f"%{escaped}%",))
    return list(await cursor.fetchall())


@wrong("q1", expect="wrong order: ORDER BY track_id")
async def search_tracks_without_order_by(db, text):
    cursor = await db.execute(
        "SELECT track_id, name FROM track WHERE instr(lower(name), lower(?)) > 0", (text,))
    return list(await cursor.fetchall())


@correct("q1")
async def search_tracks_instr_sorted_in_python(db, text):
    cursor = await db.execute(
        "SELECT track_id, name FROM track WHERE instr(lower(name), lower(?)) > 0", (text,))
    return sorted(await cursor.fetchall())


@wrong("q3", expect="an id that is already taken")
async def create_invoice_count_plus_one(db, customer_id, lines):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM invoice")).fetchone()
        invoice_id = count + 1
        await db.execute(
            "INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
            "VALUES (?, ?, datetime('now'), 0)", (invoice_id, customer_id))
        await db.executemany(
            "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
            "VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)",
            [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = ?) WHERE invoice_id = ?", (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="a count of the invoices is no id")
async def create_invoice_returns_count_plus_one(db, customer_id, lines):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM invoice")).fetchone()
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        real_id = cursor.lastrowid
        await db.executemany(
            "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
            "VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)",
            [(real_id, t, t, q) for t, q in lines])
        await db.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = ?) WHERE invoice_id = ?", (real_id, real_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return count + 1


@correct("q3")
async def create_invoice_returning_clause(db, customer_id, lines):
    try:
        async with db.execute(
                "INSERT INTO invoice (customer_id, invoice_date, total) "
                "VALUES (?, datetime('now'), 0) RETURNING invoice_id", (customer_id,)) as cursor:
            (invoice_id,) = await cursor.fetchone()
        await db.executemany(
            "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
            "VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)",
            [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = ?) WHERE invoice_id = ?", (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q4", expect="an id that is already taken")
async def add_playlist_count_plus_one(db, name, track_ids):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM playlist")).fetchone()
        playlist_id = count + 1
        await db.execute("INSERT INTO playlist (playlist_id, name) VALUES (?, ?)", (playlist_id, name))
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@wrong("q4", expect="Return cursor.lastrowid")
async def add_playlist_returns_count_plus_one(db, name, track_ids):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM playlist")).fetchone()
        await db.execute("INSERT INTO playlist (name) VALUES (?)", (name,))
        playlist_id = count + 1
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@correct("q4")
async def add_playlist_returning_clause(db, name, track_ids):
    try:
        async with db.execute("INSERT INTO playlist (name) VALUES (?) RETURNING playlist_id",
                              (name,)) as cursor:
            (playlist_id,) = await cursor.fetchone()
        await db.executemany("INSERT INTO playlist_track (playlist_id, track_id) VALUES (?, ?)",
                             [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@wrong("q3", expect="each pair is a line of its own")
async def create_invoice_merges_a_repeated_track(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES (?, datetime('now'), 0)",
            (customer_id,))
        invoice_id = cursor.lastrowid
        quantities = dict(lines)  # a track given twice keeps only its last quantity
        await db.executemany(
            "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
            "VALUES (?, ?, (SELECT unit_price FROM track WHERE track_id = ?), ?)",
            [(invoice_id, t, t, q) for t, q in quantities.items()])
        await db.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = ?) WHERE invoice_id = ?", (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q2")
async def top_artists_correlated_subquery(db, n):
    async with db.execute(
            """
            SELECT name, tracks FROM (
                SELECT ar.name AS name,
                       (SELECT count(*) FROM track AS t JOIN album AS al ON al.album_id = t.album_id
                        WHERE al.artist_id = ar.artist_id) AS tracks
                FROM artist AS ar)
            WHERE tracks > 0 ORDER BY tracks DESC, name LIMIT ?
            """, (n,)) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


@wrong("q5", expect="ORDER BY last_name, first_name")
async def customers_in_by_last_name_only(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        cursor = await db.execute(
            "SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
            "ORDER BY last_name", (country,))
        return [dict(row) for row in await cursor.fetchall()]


@correct("q5")
async def customers_in_rows_made_dicts(path, country):
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        cursor = await db.execute(
            "SELECT customer_id, first_name, last_name, email FROM customer WHERE country = ? "
            "ORDER BY last_name, first_name", (country,))
        return [dict(row) for row in await cursor.fetchall()]


# --- q3, q4: a new id worked out from the rows instead of read from the INSERT ---------------------

@wrong("q3", expect="an id that is already taken")
async def create_invoice_id_from_count_plus_one(db, customer_id, lines):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM invoice")).fetchone()
        invoice_id = count + 1  # the mistake: ids have gaps, so count + 1 may be taken
        await db.execute("INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
                         "VALUES (?, ?, datetime('now'), 0)", (invoice_id, customer_id))
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_with_returning(db, customer_id, lines):
    try:
        cursor = await db.execute(NEW_INVOICE + " RETURNING invoice_id", (customer_id,))
        (invoice_id,) = await cursor.fetchone()
        await cursor.close()
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q4", expect="an id that is already taken")
async def add_playlist_id_from_count_plus_one(db, name, track_ids):
    try:
        (count,) = await (await db.execute("SELECT count(*) FROM playlist")).fetchone()
        playlist_id = count + 1  # the mistake: ids have gaps, so count + 1 may be taken
        await db.execute("INSERT INTO playlist (playlist_id, name) VALUES (?, ?)", (playlist_id, name))
        await db.executemany(ADD_TRACK, [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


@correct("q4")
async def add_playlist_with_last_insert_rowid(db, name, track_ids):
    try:
        await db.execute(NEW_PLAYLIST, (name,))
        (playlist_id,) = await (await db.execute("SELECT last_insert_rowid()")).fetchone()
        await db.executemany(ADD_TRACK, [(playlist_id, t) for t in track_ids])
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return playlist_id


# --- q3: an id read from MAX(invoice_id) + 1: free on one writer, shared by two -------------

@wrong("q3", expect="gave the new invoice its invoice_id itself")
async def create_invoice_id_from_max_plus_one(db, customer_id, lines):
    try:
        await db.execute("BEGIN")
        (invoice_id,) = await (await db.execute(
            "SELECT MAX(invoice_id) + 1 FROM invoice")).fetchone()
        cursor = await db.execute(
            "INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
            "VALUES (?, ?, datetime('now'), 0)", (invoice_id, customer_id))
        if cursor.rowcount != 1:
            raise RuntimeError("the invoice was not inserted")
        for track_id, quantity in lines:
            cursor = await db.execute(NEW_LINE, (invoice_id, track_id, track_id, quantity))
            if cursor.rowcount != 1:
                raise RuntimeError(f"no line for track {track_id}")
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="after reading `SELECT max(invoice_id) FROM invoice`")
async def create_invoice_id_from_max_in_python(db, customer_id, lines):
    try:
        (top,) = await (await db.execute("SELECT max(invoice_id) FROM invoice")).fetchone()
        invoice_id = top + 1
        await db.execute("INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
                         "VALUES (?, ?, datetime('now'), 0)", (invoice_id, customer_id))
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@wrong("q3", expect="(an id from its SELECT)")
async def create_invoice_max_plus_one_inside_the_insert(db, customer_id, lines):
    try:
        await db.execute(
            "INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
            "SELECT coalesce(max(invoice_id), 0) + 1, ?, datetime('now'), 0 FROM invoice",
            (customer_id,))
        (invoice_id,) = await (await db.execute("SELECT max(invoice_id) FROM invoice")).fetchone()
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_with_last_insert_rowid(db, customer_id, lines):
    try:
        await db.execute(NEW_INVOICE, (customer_id,))
        (invoice_id,) = await (await db.execute("SELECT last_insert_rowid()")).fetchone()
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_names_every_column_with_a_null_id(db, customer_id, lines):
    try:
        cursor = await db.execute(
            "INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
            "VALUES (?, ?, datetime('now'), 0)", (None, customer_id))  # NULL: SQLite numbers it
        invoice_id = cursor.lastrowid
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id


@correct("q3")
async def create_invoice_checks_the_id_grew(db, customer_id, lines):
    try:
        (top,) = await (await db.execute("SELECT max(invoice_id) FROM invoice")).fetchone()
        cursor = await db.execute(NEW_INVOICE, (customer_id,))
        invoice_id = cursor.lastrowid
        if invoice_id <= top:
            raise RuntimeError(f"invoice {invoice_id} is not new")
        await db.executemany(NEW_LINE, [(invoice_id, t, t, q) for t, q in lines])
        await db.execute(TOTAL, (invoice_id, invoice_id))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return invoice_id
