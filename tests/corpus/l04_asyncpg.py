"""Wrong answers to exercises/04-asyncpg-workbook.ipynb."""

import asyncio

import asyncpg

from tests.corpus import correct, wrong

CUSTOMER_COLUMNS = "customer_id, first_name, last_name, country"


# --- q1: customers_in ---------------------------------------------------------------------

@wrong("q1", expect="inside your SQL text")
async def customers_in_fstring(conn, countries):
    listed = ", ".join(f"'{c}'" for c in countries)
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country IN ({listed}) ORDER BY country, last_name"
    )


@wrong("q1", expect="changes with the number of countries")
async def customers_in_builds_placeholders(conn, countries):
    marks = ", ".join(f"${i}" for i in range(1, len(countries) + 1))
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country IN ({marks}) ORDER BY country, last_name",
        *countries,
    )


@wrong("q1", expect="queries for 3 countries")
async def customers_in_one_query_per_country(conn, countries):
    rows = []
    for country in sorted(countries):
        rows += await conn.fetch(
            f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country = $1 ORDER BY last_name", country
        )
    return rows


@wrong("q1", expect="wrong order")
async def customers_in_unsorted(conn, countries):
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country = any($1::text[]) ORDER BY customer_id",
        countries,
    )


@wrong("q1", expect="4 columns")
async def customers_in_select_star(conn, countries):
    return await conn.fetch(
        "SELECT * FROM customer WHERE country = any($1::text[]) ORDER BY country, last_name", countries
    )


@wrong("q1", expect="wrong order")
async def customers_in_dicts_unsorted(conn, countries):
    rows = await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country = any($1::text[])", countries
    )
    return sorted((dict(row) for row in rows), key=lambda row: row["last_name"])


@wrong("q1", expect="forget `await`")
async def customers_in_without_await(conn, countries):
    return conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country = any($1::text[]) ORDER BY country, last_name",
        countries,
    )


# --- q2: top_artists -------------------------------------------------------------------------

TOP = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
    ORDER BY tracks DESC, ar.name
"""


GROUPED = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
"""


@wrong("q2", expect="Ties are broken by name")
async def top_artists_ties_by_id(conn, n):
    # In Chinook ids follow names, so this passed until the check renamed a tied artist.
    return await conn.fetch(GROUPED + " ORDER BY tracks DESC, ar.artist_id LIMIT $1", n)


@wrong("q2", expect="Ties are broken by name")
async def top_artists_ties_by_name_descending(conn, n):
    return await conn.fetch(GROUPED + " ORDER BY tracks DESC, ar.name DESC LIMIT $1", n)


@wrong("q2", expect="expected 5 rows for n=5")
async def top_artists_off_by_one(conn, n):
    return await conn.fetch(TOP + " LIMIT $1", n + 1)


@wrong("q2", expect="expected 5 rows for n=5")
async def top_artists_python_slice_off_by_one(conn, n):
    rows = await conn.fetch(TOP)
    return rows[: n - 1] if n else []


@wrong("q2", expect="wrong order")
async def top_artists_sorted_by_name(conn, n):
    return await conn.fetch(f"SELECT name, tracks FROM ({TOP} LIMIT $1) AS top ORDER BY name", n)


@wrong("q2", expect="changes with n")
async def top_artists_fstring_limit(conn, n):
    return await conn.fetch(TOP + f" LIMIT {int(n)}")


@wrong("q2", expect="Count tracks per artist")
async def top_artists_counts_albums(conn, n):
    return await conn.fetch(
        """
        SELECT ar.name, count(*) AS albums
        FROM album AS al JOIN artist AS ar ON ar.artist_id = al.artist_id
        GROUP BY ar.artist_id, ar.name
        ORDER BY albums DESC, ar.name
        LIMIT $1
        """,
        n,
    )


@wrong("q2", expect="two columns")
async def top_artists_with_id(conn, n):
    return await conn.fetch(
        """
        SELECT ar.artist_id, ar.name, count(*) AS tracks
        FROM track AS t
        JOIN album AS al ON al.album_id = t.album_id
        JOIN artist AS ar ON ar.artist_id = al.artist_id
        GROUP BY ar.artist_id, ar.name
        ORDER BY tracks DESC, ar.name
        LIMIT $1
        """,
        n,
    )


# --- q3: create_invoice ----------------------------------------------------------------------

NEW_INVOICE = "INSERT INTO invoice (customer_id, invoice_date, total) VALUES ($1, now(), 0) RETURNING invoice_id"
NEW_LINE = """
    INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity)
    VALUES ($1, $2, (SELECT unit_price FROM track WHERE track_id = $2), $3)
"""
TOTAL = """
    UPDATE invoice SET total = (
        SELECT sum(unit_price * quantity) FROM invoice_line WHERE invoice_id = $1
    ) WHERE invoice_id = $1
"""


@wrong("q3", expect="stayed in the database")
async def create_invoice_without_transaction(conn, customer_id, lines):
    invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
    for track_id, quantity in lines:
        await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
    await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="stayed in the database")
async def create_invoice_lines_in_executemany_only(conn, customer_id, lines):
    # executemany is atomic on its own, but the invoice row before it is not covered
    invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
    await conn.executemany(NEW_LINE, [(invoice_id, t, q) for t, q in lines])
    await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="refused its total")
async def create_invoice_total_after_commit(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
    await conn.execute(TOTAL, invoice_id)  # committed already: a failure here leaves total 0
    return invoice_id


@wrong("q3", expect="left inside a failed transaction")
async def create_invoice_manual_begin(conn, customer_id, lines):
    await conn.execute("BEGIN")
    invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
    for track_id, quantity in lines:
        await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
    await conn.execute(TOTAL, invoice_id)
    await conn.execute("COMMIT")
    return invoice_id


@wrong("q3", expect="left its connection inside a transaction")
async def create_invoice_never_commits(conn, customer_id, lines):
    transaction = conn.transaction()
    await transaction.start()
    invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
    for track_id, quantity in lines:
        await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
    await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="rollback runs only for database errors")
async def create_invoice_rolls_back_database_errors_only(conn, customer_id, lines):
    transaction = conn.transaction()
    await transaction.start()
    try:
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
        await conn.execute(TOTAL, invoice_id)
    except asyncpg.PostgresError:
        await transaction.rollback()
        raise
    await transaction.commit()
    return invoice_id


@wrong("q3", expect="let the error reach the caller")
async def create_invoice_swallows_every_error(conn, customer_id, lines):
    try:
        async with conn.transaction():
            invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
            for track_id, quantity in lines:
                await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
            await conn.execute(TOTAL, invoice_id)
    except asyncpg.PostgresError:
        raise
    except Exception:
        return None
    return invoice_id


@wrong("q3", expect="no line was inserted for track 999999, so nothing failed")
async def create_invoice_ignores_missing_tracks(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(
                """
                INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity)
                SELECT $1, track_id, unit_price, $3 FROM track WHERE track_id = $2
                """,
                invoice_id, track_id, quantity,
            )
        await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="let the error propagate")
async def create_invoice_swallows_errors(conn, customer_id, lines):
    try:
        async with conn.transaction():
            invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
            for track_id, quantity in lines:
                await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
            await conn.execute(TOTAL, invoice_id)
    except asyncpg.PostgresError:
        return None
    return invoice_id


@wrong("q3", expect="return the new invoice_id")
async def create_invoice_returns_nothing(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
        await conn.execute(TOTAL, invoice_id)


@wrong("q3", expect="total 4.96")
async def create_invoice_forgets_total(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
    return invoice_id


# --- q4: lookup_many -------------------------------------------------------------------------

NAME = "SELECT name FROM track WHERE track_id = $1"


@wrong("q4", expect="one at a time")
async def lookup_many_sequential(pool, track_ids):
    names = []
    for track_id in track_ids:
        async with pool.acquire() as conn:
            names.append(await conn.fetchval(NAME, track_id))
    return names


@wrong("q4", expect="another operation is in progress")
async def lookup_many_shares_one_connection(pool, track_ids):
    async with pool.acquire() as conn:
        return list(await asyncio.gather(*(conn.fetchval(NAME, i) for i in track_ids)))


@wrong("q4", expect="still checked out")
async def lookup_many_never_releases(pool, track_ids):
    async def one(track_id):
        conn = await pool.acquire()
        return await conn.fetchval(NAME, track_id)

    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="stayed checked out for good")
async def lookup_many_releases_only_on_success(pool, track_ids):
    async def one(track_id):
        conn = await pool.acquire()
        name = await conn.fetchval(NAME, track_id)
        await pool.release(conn)  # skipped when fetchval raises
        return name

    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="let the error reach the caller")
async def lookup_many_hides_errors(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval(NAME, track_id)

    results = await asyncio.gather(*(one(i) for i in track_ids), return_exceptions=True)
    return [None if isinstance(r, Exception) else r for r in results]


@wrong("q4", expect="another order")
async def lookup_many_sorted(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return track_id, await conn.fetchval(NAME, track_id)

    pairs = await asyncio.gather(*(one(i) for i in track_ids))
    return [name for _, name in sorted(pairs)]


@wrong("q4", expect="return a list of names")
async def lookup_many_returns_dict(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return track_id, await conn.fetchval(NAME, track_id)

    return dict(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="forget `await`")
async def lookup_many_gather_not_awaited(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval(NAME, track_id)

    return [one(i) for i in track_ids]


# --- q5: apply_price_changes -----------------------------------------------------------------

SET_PRICE = "UPDATE track SET unit_price = $2 WHERE track_id = $1"


@wrong("q5", expect="lost after the first refusal")
async def apply_price_changes_without_savepoints(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                await conn.execute(SET_PRICE, track_id, price)
            except asyncpg.PostgresError:
                continue
            applied.append(track_id)
    return applied


@wrong("q5", expect="stayed committed")
async def apply_price_changes_without_outer_transaction(conn, changes):
    applied = []
    for track_id, price in changes:
        try:
            async with conn.transaction():
                status = await conn.execute(SET_PRICE, track_id, price)
        except asyncpg.PostgresError:
            continue
        if status == "UPDATE 1":
            applied.append(track_id)
    return applied


@wrong("q5", expect="current transaction is aborted")
async def apply_price_changes_try_inside_savepoint(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            async with conn.transaction():
                try:
                    await conn.execute(SET_PRICE, track_id, price)
                    applied.append(track_id)
                except asyncpg.PostgresError:
                    pass
    return applied


@wrong("q5", expect="stopped everything")
async def apply_price_changes_without_except(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            async with conn.transaction():
                await conn.execute(SET_PRICE, track_id, price)
            applied.append(track_id)
    return applied


@wrong("q5", expect="let other errors propagate")
async def apply_price_changes_swallows_everything(conn, changes):
    applied = []
    try:
        async with conn.transaction():
            for track_id, price in changes:
                try:
                    async with conn.transaction():
                        status = await conn.execute(SET_PRICE, track_id, price)
                except asyncpg.PostgresError:
                    continue
                if status == "UPDATE 1":
                    applied.append(track_id)
    except Exception:
        return []
    return applied


# --- added for issue 9 ------------------------------------------------------------------------

@wrong("q1", expect="some customers twice")
async def customers_in_join_unnest(conn, countries):
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer JOIN unnest($1::text[]) AS wanted(country) "
        "USING (country) ORDER BY country, last_name", countries)


@correct("q1")
async def customers_in_prepared_in_unnest(conn, countries):
    stmt = await conn.prepare(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE country IN (SELECT unnest($1::text[])) "
        "ORDER BY country, last_name")
    return await stmt.fetch(list(countries))


@wrong("q2", expect="has no LIMIT")
async def top_artists_sliced_in_python(conn, n):
    rows = await conn.fetch(TOP)
    return rows[:n]


@wrong("q2", expect="name them `name` and `tracks`")
async def top_artists_unnamed_count(conn, n):
    return await conn.fetch(TOP.replace("count(*) AS tracks", "count(*)").replace(
        "ORDER BY tracks DESC", "ORDER BY 2 DESC") + " LIMIT $1", n)


@wrong("q2", expect="not by the name alone")
async def top_artists_grouped_by_name(conn, n):
    return await conn.fetch(TOP.replace("GROUP BY ar.artist_id, ar.name", "GROUP BY ar.name")
                            + " LIMIT $1", n)


@correct("q2")
async def top_artists_left_join_counting_tracks(conn, n):
    return await conn.fetch(
        """
        SELECT ar.name, count(t.track_id) AS tracks
        FROM artist AS ar
        LEFT JOIN album AS al ON al.artist_id = ar.artist_id
        LEFT JOIN track AS t ON t.album_id = al.album_id
        GROUP BY ar.artist_id, ar.name
        ORDER BY tracks DESC, ar.name
        LIMIT $1
        """, n)


@wrong("q3", expect="a cancellation (CancelledError is a BaseException)")
async def create_invoice_rolls_back_on_exception_only(conn, customer_id, lines):
    transaction = conn.transaction()
    await transaction.start()
    try:
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
        await conn.execute(TOTAL, invoice_id)
    except Exception:
        await transaction.rollback()
        raise
    await transaction.commit()
    return invoice_id


@wrong("q3", expect="swallowed the CancelledError")
async def create_invoice_swallows_cancellation(conn, customer_id, lines):
    try:
        async with conn.transaction():
            invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
            for track_id, quantity in lines:
                await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
            await conn.execute(TOTAL, invoice_id)
    except asyncio.CancelledError:
        return None  # rolled back, but the caller never learns it was cancelled
    return invoice_id


@wrong("q3", expect="sent the float")
async def create_invoice_total_as_float(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, customer_id)
        total = 0.0
        for track_id, quantity in lines:
            price = await conn.fetchval("SELECT unit_price FROM track WHERE track_id = $1", track_id)
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
            total += float(price) * quantity
        await conn.execute("UPDATE invoice SET total = $2 WHERE invoice_id = $1", invoice_id, total)
    return invoice_id


@wrong("q3", expect="bypassing the identity sequence")
async def create_invoice_max_plus_one(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval("SELECT max(invoice_id) + 1 FROM invoice")
        await conn.execute("INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
                           "VALUES ($1, $2, now(), 0)", invoice_id, customer_id)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
        await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="inside the text of your SQL")
async def create_invoice_values_formatted(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(
            f"INSERT INTO invoice (customer_id, invoice_date, total) VALUES ({customer_id}, now(), 0) "
            "RETURNING invoice_id")
        for track_id, quantity in lines:
            await conn.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) VALUES "
                f"({invoice_id}, {track_id}, (SELECT unit_price FROM track WHERE track_id = "
                f"{track_id}), {quantity})")
        await conn.execute(TOTAL, invoice_id)
    return invoice_id


@wrong("q3", expect="nothing fixed")
async def create_invoice_for_customer_seven(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(NEW_INVOICE, 7)
        for track_id, quantity in lines:
            await conn.execute(NEW_LINE, invoice_id, track_id, quantity)
        await conn.execute(TOTAL, invoice_id)
    return invoice_id


@correct("q3")
async def create_invoice_decimal_total_and_executemany(conn, customer_id, lines):
    async with conn.transaction():
        prices = dict(await conn.fetch("SELECT track_id, unit_price FROM track "
                                       "WHERE track_id = any($1::int[])", [t for t, _ in lines]))
        missing = [t for t, _ in lines if t not in prices]
        if missing:
            raise LookupError(f"no track {missing[0]}")
        total = sum(prices[t] * q for t, q in lines)  # Decimal arithmetic
        invoice_id = await conn.fetchval(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES ($1, now(), $2) "
            "RETURNING invoice_id", customer_id, total)
        await conn.executemany(
            "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
            "VALUES ($1, $2, $3, $4)", [(invoice_id, t, prices[t], q) for t, q in lines])
    return invoice_id


@wrong("q4", expect="Plain gather does that")
async def lookup_many_plain_gather(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval(NAME, track_id)

    return list(await asyncio.gather(*(one(i) for i in track_ids)))


@wrong("q4", expect="a fixed number of workers")
async def lookup_many_two_workers(pool, track_ids):
    queue = asyncio.Queue()
    for position, track_id in enumerate(track_ids):
        queue.put_nowait((position, track_id))
    names = [None] * len(track_ids)

    async def worker():
        async with pool.acquire() as conn:
            while not queue.empty():
                position, track_id = queue.get_nowait()
                names[position] = await conn.fetchval(NAME, track_id)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(2, len(track_ids))):
            tg.create_task(worker())
    return names


@wrong("q4", expect="a fixed number of workers")
async def lookup_many_three_workers(pool, track_ids):
    queue = asyncio.Queue()
    for position, track_id in enumerate(track_ids):
        queue.put_nowait((position, track_id))
    names = [None] * len(track_ids)

    async def worker():
        async with pool.acquire() as conn:
            while not queue.empty():
                position, track_id = queue.get_nowait()
                names[position] = await conn.fetchval(NAME, track_id)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(3, len(track_ids))):  # the statement's pool size, fixed
            tg.create_task(worker())
    return names


@correct("q4")
async def lookup_many_gather_then_first_error(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval(NAME, track_id)

    results = await asyncio.gather(*(one(i) for i in track_ids), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@correct("q4")
async def lookup_many_task_group_unwrapped(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval(NAME, track_id)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(i)) for i in track_ids]
    except* asyncpg.PostgresError as group:
        raise group.exceptions[0] from None
    return [task.result() for task in tasks]


@correct("q4")
async def lookup_many_workers_per_pool_size(pool, track_ids):
    queue = asyncio.Queue()
    for position, track_id in enumerate(track_ids):
        queue.put_nowait((position, track_id))
    names = [None] * len(track_ids)

    async def worker():
        async with pool.acquire() as conn:
            while not queue.empty():
                position, track_id = queue.get_nowait()
                names[position] = await conn.fetchval(NAME, track_id)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(pool.get_max_size(), len(track_ids))):
            tg.create_task(worker())
    return names


@wrong("q5", expect="does not exist")
async def apply_price_changes_ignores_the_status(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    await conn.execute(SET_PRICE, track_id, price)
            except asyncpg.PostgresError:
                continue
            applied.append(track_id)  # also for a track that does not exist ('UPDATE 0')
    return applied


@wrong("q5", expect="not every Exception")
async def apply_price_changes_skips_every_exception(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    status = await conn.execute(SET_PRICE, track_id, price)
            except Exception:  # the mistake: skips more than refusals
                continue
            if status == "UPDATE 1":
                applied.append(track_id)
    return applied


@wrong("q5", expect="a cancellation (CancelledError is a BaseException)")
async def apply_price_changes_manual_outer_transaction(conn, changes):
    applied = []
    outer = conn.transaction()
    await outer.start()
    try:
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    status = await conn.execute(SET_PRICE, track_id, price)
            except asyncpg.PostgresError:
                continue
            if status == "UPDATE 1":
                applied.append(track_id)
    except Exception:
        await outer.rollback()
        raise
    await outer.commit()
    return applied


@wrong("q5", expect="a cancellation is not a refused change")
async def apply_price_changes_swallows_cancellation(conn, changes):
    applied = []
    try:
        async with conn.transaction():
            for track_id, price in changes:
                try:
                    async with conn.transaction():
                        status = await conn.execute(SET_PRICE, track_id, price)
                except asyncpg.PostgresError:
                    continue
                if status == "UPDATE 1":
                    applied.append(track_id)
    except asyncio.CancelledError:
        return []  # rolled back, but the caller never learns it was cancelled
    return applied


@correct("q5")
async def apply_price_changes_with_returning(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    changed = await conn.fetchval(
                        "UPDATE track SET unit_price = $2 WHERE track_id = $1 RETURNING track_id",
                        track_id, price)
            except asyncpg.PostgresError:
                continue
            if changed is not None:
                applied.append(track_id)
    return applied


@correct("q1")
async def customers_in_with_unnest_subquery_and_empty_shortcut(conn, countries):
    if not countries:
        return []
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer "
        "WHERE country IN (SELECT DISTINCT unnest($1::text[])) ORDER BY country, last_name",
        countries)


@correct("q5")
async def apply_price_changes_counting_status(conn, changes):
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    status = await conn.execute(SET_PRICE, track_id, price)
            except (asyncpg.CheckViolationError, asyncpg.RaiseError, asyncpg.DataError):
                continue  # the three ways the database refuses a change here
            if int(status.split()[-1]) > 0:
                applied.append(track_id)
    return applied


# --- a list split at commas, FETCH FIRST, an id counted, an exception returned as a name -------

CUSTOMERS = "SELECT customer_id, first_name, last_name, country FROM customer"


@wrong("q1", expect="a name with a comma in it")
async def customers_in_comma_joined_and_split(conn, countries):
    return await conn.fetch(
        f"{CUSTOMERS} WHERE country = any(string_to_array($1, ',')) ORDER BY country, last_name",
        ",".join(countries))


@wrong("q1", expect="malformed array literal")
async def customers_in_array_literal_built_by_hand(conn, countries):
    literal = "{" + ",".join(countries) + "}"
    return await conn.fetch(
        f"{CUSTOMERS} WHERE country = any($1::text::text[]) ORDER BY country, last_name", literal)


@correct("q1")
async def customers_in_unnest_subquery(conn, countries):
    return await conn.fetch(
        f"{CUSTOMERS} WHERE country IN (SELECT unnest($1::text[])) ORDER BY country, last_name",
        countries)


TOP_BY_TRACKS = """
    SELECT ar.name, count(*) AS tracks
    FROM track AS t JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY ar.artist_id, ar.name
    ORDER BY tracks DESC, ar.name
"""


@correct("q2")
async def top_artists_fetch_first(conn, n):
    return await conn.fetch(TOP_BY_TRACKS + "FETCH FIRST $1 ROWS ONLY", n)


@correct("q2")
async def top_artists_offset_fetch_next(conn, n):
    return await conn.fetch(TOP_BY_TRACKS + "OFFSET 0 ROWS FETCH NEXT $1 ROWS ONLY", n)


@wrong("q2", expect="has no LIMIT (nor FETCH FIRST")
async def top_artists_limit_all_then_slice(conn, n):
    return (await conn.fetch(TOP_BY_TRACKS + "LIMIT ALL"))[:n]


@wrong("q3", expect="already taken")
async def create_invoice_count_plus_one(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval("SELECT count(*) + 1 FROM invoice")
        await conn.execute(
            "INSERT INTO invoice (invoice_id, customer_id, invoice_date, total) "
            "VALUES ($1, $2, now(), 0)", invoice_id, customer_id)
        for track_id, quantity in lines:
            await conn.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
                "VALUES ($1, $2, (SELECT unit_price FROM track WHERE track_id = $2), $3)",
                invoice_id, track_id, quantity)
        await conn.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = $1) WHERE invoice_id = $1", invoice_id)
    return invoice_id


@wrong("q4", expect="2147483648")
async def lookup_many_returns_the_exception(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT name FROM track WHERE track_id = $1", track_id)

    return await asyncio.gather(*(one(i) for i in track_ids), return_exceptions=True)


@wrong("q3", expect="each pair is a line of its own")
async def create_invoice_merges_a_repeated_track(conn, customer_id, lines):
    async with conn.transaction():
        invoice_id = await conn.fetchval(
            "INSERT INTO invoice (customer_id, invoice_date, total) VALUES ($1, now(), 0) "
            "RETURNING invoice_id", customer_id)
        for track_id, quantity in dict(lines).items():  # a repeated track keeps one quantity
            await conn.execute(
                "INSERT INTO invoice_line (invoice_id, track_id, unit_price, quantity) "
                "VALUES ($1, $2, (SELECT unit_price FROM track WHERE track_id = $2), $3)",
                invoice_id, track_id, quantity)
        await conn.execute(
            "UPDATE invoice SET total = (SELECT sum(unit_price * quantity) FROM invoice_line "
            "WHERE invoice_id = $1) WHERE invoice_id = $1", invoice_id)
    return invoice_id


@wrong("q5", expect="in another order")
async def apply_price_changes_sorted(conn, changes):
    applied = set()
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    status = await conn.execute(
                        "UPDATE track SET unit_price = $2 WHERE track_id = $1", track_id, price)
            except asyncpg.PostgresError:
                continue
            if status == "UPDATE 1":
                applied.add(track_id)
    return sorted(applied)


@wrong("q2", expect="count(*) counts that row")
async def top_artists_left_join_count_star(conn, n):
    return await conn.fetch(
        """SELECT ar.name, COUNT(*) AS tracks FROM artist ar
           LEFT JOIN album al ON al.artist_id = ar.artist_id LEFT JOIN track t ON t.album_id = al.album_id
           GROUP BY ar.artist_id ORDER BY tracks DESC, ar.name LIMIT $1""", n)


@correct("q1")
async def customers_in_exists_unnest_varchar_array(conn, countries):
    # varchar[] makes asyncpg look the type up on its first use on a connection: its own
    # queries, not the learner's, and not counted.
    if not countries:
        return []
    return await conn.fetch(
        """SELECT c.customer_id, c.first_name, c.last_name, c.country FROM customer c
           WHERE EXISTS (SELECT 1 FROM unnest($1::varchar[]) AS w(name) WHERE w.name = c.country)
           ORDER BY c.country ASC, c.last_name ASC, c.customer_id""", countries)


@wrong("q4", expect="reading a column from None")
async def lookup_many_subscripts_a_missing_row(pool, track_ids):
    async def one(track_id):
        async with pool.acquire() as conn:
            return (await conn.fetchrow("SELECT name FROM track WHERE track_id = $1", track_id))["name"]

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(track_id)) for track_id in track_ids]
    return [task.result() for task in tasks]


# --- q1: an empty country dropped before binding -----------------------------------------------

@wrong("q1", expect="no customer of the empty country ''")
async def customers_in_drops_empty_countries(conn, countries):
    wanted = [c for c in countries if c]
    return await conn.fetch(
        f"{CUSTOMERS} WHERE country = any($1::text[]) ORDER BY country, last_name", wanted)


@wrong("q1", expect="no customer of the empty country ''")
async def customers_in_skips_blank_names_in_a_loop(conn, countries):
    wanted = []
    for country in countries:
        if country.strip():
            wanted.append(country)
    return await conn.fetch(
        f"{CUSTOMERS} WHERE country = any($1::text[]) ORDER BY country, last_name", wanted)


@correct("q1")
async def customers_in_keeps_empty_countries(conn, countries):
    rows = await conn.fetch(
        f"{CUSTOMERS} WHERE country = ANY($1) ORDER BY country ASC, last_name ASC", list(countries))
    return [tuple(row) for row in rows]


# --- q5: the UPDATE run through a prepared statement ------------------------------------------

@correct("q5")
async def apply_price_changes_prepared_statement(conn, changes):
    applied = []
    async with conn.transaction():
        stmt = await conn.prepare("UPDATE track SET unit_price = $2 WHERE track_id = $1")
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    await stmt.fetch(track_id, price)
            except asyncpg.PostgresError:
                continue
            except BaseException:
                raise
            if stmt.get_statusmsg() == "UPDATE 1":
                applied.append(track_id)
    return applied


@correct("q5")
async def apply_price_changes_prepared_returning(conn, changes):
    stmt = await conn.prepare(
        "UPDATE track SET unit_price = $2 WHERE track_id = $1 RETURNING track_id")
    applied = []
    async with conn.transaction():
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    changed = await stmt.fetchval(track_id, price)
            except asyncpg.PostgresError:
                continue
            if changed is not None:
                applied.append(changed)
    return applied


@wrong("q5", expect="not every Exception")
async def apply_price_changes_prepared_skips_every_exception(conn, changes):
    applied = []
    async with conn.transaction():
        stmt = await conn.prepare("UPDATE track SET unit_price = $2 WHERE track_id = $1")
        for track_id, price in changes:
            try:
                async with conn.transaction():
                    await stmt.fetch(track_id, price)
            except Exception:  # the mistake: skips more than refusals
                continue
            if stmt.get_statusmsg() == "UPDATE 1":
                applied.append(track_id)
    return applied
