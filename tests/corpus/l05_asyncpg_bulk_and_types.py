"""Wrong answers to exercises/05-asyncpg-bulk-and-types-workbook.ipynb."""

import asyncio
import csv
import io
import json

import asyncpg

from course import synthetic
from tests.corpus import correct, wrong

COLUMNS = synthetic.INVOICE_LINE_COLUMNS


# --- q1: load_lines ---------------------------------------------------------------------------

@wrong("q1", expect="one statement per row")
async def load_lines_row_by_row(conn, table, rows):
    count = 0
    async with conn.transaction():
        for row in rows:
            await conn.execute(
                f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5)", *row
            )
            count += 1
    return count


@wrong("q1", expect="executemany")
async def load_lines_executemany(conn, table, rows):
    rows = list(rows)
    await conn.executemany(
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5)", rows
    )
    return len(rows)


@wrong("q1", expect="0 of the 2000 rows arrived through COPY")
async def load_lines_executemany_then_empty_copy(conn, table, rows):
    rows = list(rows)
    await conn.executemany(
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5)", rows
    )
    await conn.copy_records_to_table(table, records=[], columns=COLUMNS)  # "uses COPY"
    return len(rows)


@wrong("q1", expect="went in by INSERT statements")
async def load_lines_half_copied_half_inserted(conn, table, rows):
    rows = list(rows)
    half = len(rows) // 2
    await conn.copy_records_to_table(table, records=rows[:half], columns=COLUMNS)
    for row in rows[half:]:
        await conn.execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5)", *row)
    return len(rows)


@wrong("q1", expect="columns=")
async def load_lines_without_columns(conn, table, rows):
    status = await conn.copy_records_to_table(table, records=rows)
    return int(status.split()[-1])


@wrong("q1", expect="status string")
async def load_lines_returns_status(conn, table, rows):
    return await conn.copy_records_to_table(table, records=rows, columns=COLUMNS)


@wrong("q1", expect="generator")
async def load_lines_uses_len(conn, table, rows):
    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS)
    return len(rows)


@wrong("q1", expect="never awaited")
async def load_lines_without_await(conn, table, rows):
    conn.copy_records_to_table(table, records=rows, columns=COLUMNS)
    return 0


@wrong("q1", expect="holds 1000 rows")
async def load_lines_half(conn, table, rows):
    rows = list(rows)
    status = await conn.copy_records_to_table(table, records=rows[::2], columns=COLUMNS)
    return int(status.split()[-1])


# --- q2: make_pool ----------------------------------------------------------------------------

def _codec(conn):
    return conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@wrong("q2", expect="only 1 of the pool's 3 connections")
async def make_pool_codec_on_one_connection(dsn, size):
    pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    async with pool.acquire() as conn:
        await _codec(conn)
    return pool


@wrong("q2", expect="after the pool replaced its connections")
async def make_pool_codec_on_each_connection_by_hand(dsn, size):
    pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    conns = [await pool.acquire() for _ in range(size)]
    for conn in conns:
        await _codec(conn)
    for conn in conns:
        await pool.release(conn)
    return pool


@wrong("q2", expect="schema='pg_catalog'")
async def make_pool_codec_without_schema(dsn, size):
    async def init(conn):
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads)

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)


@wrong("q2", expect="encoder=json.dumps")
async def make_pool_decoder_only(dsn, size):
    async def init(conn):
        await conn.set_type_codec("jsonb", encoder=str, decoder=json.loads, schema="pg_catalog")

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)


@wrong("q2", expect="min_size=size")
async def make_pool_default_sizes(dsn, size):
    async def init(conn):
        await _codec(conn)

    return await asyncpg.create_pool(dsn, init=init)


@wrong("q2", expect="runs on every acquire")
async def make_pool_codec_in_setup(dsn, size):
    # Every connection decodes jsonb, but setup runs on each acquire: set_type_codec looks the
    # type up again and empties the connection's statement cache every time.
    async def setup(conn):
        await _codec(conn)

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size, setup=setup)


@wrong("q2", expect="forget `await`")
async def make_pool_not_awaited(dsn, size):
    async def init(conn):
        await _codec(conn)

    return asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)


@wrong("q2", expect="no codec is installed")
async def make_pool_without_codec(dsn, size):
    return await asyncpg.create_pool(dsn, min_size=size, max_size=size)


@wrong("q2", expect="never awaited")
async def make_pool_init_without_await(dsn, size):
    async def init(conn):
        conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)


# --- q3: prices_for ---------------------------------------------------------------------------

PRICE = "SELECT unit_price FROM track WHERE track_id = $1"


@wrong("q3", expect="prepared 7 statements")
async def prices_for_prepare_per_id(conn, track_ids):
    prices = []
    async for track_id in track_ids:
        stmt = await conn.prepare(PRICE)
        prices.append(await stmt.fetchval(track_id))
    return prices


@wrong("q3", expect="prepared nothing")
async def prices_for_without_prepare(conn, track_ids):
    return [await conn.fetchval(PRICE, track_id) async for track_id in track_ids]


@wrong("q3", expect="prepared nothing")
async def prices_for_one_array_query(conn, track_ids):
    ids = [track_id async for track_id in track_ids]
    rows = await conn.fetch("SELECT track_id, unit_price FROM track WHERE track_id = any($1::int[])", ids)
    prices = dict(rows)
    return [prices.get(track_id) for track_id in ids]


@wrong("q3", expect="None for a track that does not exist")
async def prices_for_skips_missing(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    prices = []
    async for track_id in track_ids:
        price = await stmt.fetchval(track_id)
        if price is not None:
            prices.append(price)
    return prices


@wrong("q3", expect="went through the connection")
async def prices_for_prepares_but_queries_connection(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    prices = []
    async for track_id in track_ids:
        _ = stmt.fetchval  # looked up, never called
        prices.append(await conn.fetchval(PRICE, track_id))
    return prices


@wrong("q3", expect="ran for 1 of the 7 ids")
async def prices_for_runs_statement_once(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    prices = [await stmt.fetchval(1)]  # "warm it up", then the connection's own cache does the rest
    async for track_id in track_ids:
        prices.append(await conn.fetchval(PRICE, track_id))
    return prices[1:]


@wrong("q3", expect="forget `await`")
async def prices_for_without_await(conn, track_ids):
    stmt = conn.prepare(PRICE)
    return [await stmt.fetchval(track_id) async for track_id in track_ids]


# --- q4: collect_notifications ----------------------------------------------------------------

@wrong("q4", expect="remove_listener")
async def collect_notifications_keeps_listening(conn, channel, n):
    queue = asyncio.Queue()
    await conn.add_listener(channel, lambda c, pid, ch, payload: queue.put_nowait(payload))
    return [await queue.get() for _ in range(n)]


@wrong("q4", expect="remove_listener")
async def collect_notifications_removes_another_callback(conn, channel, n):
    queue = asyncio.Queue()
    await conn.add_listener(channel, lambda c, pid, ch, payload: queue.put_nowait(payload))
    try:
        return [await queue.get() for _ in range(n)]
    finally:  # a new lambda is a different callback: the first one stays registered
        await conn.remove_listener(channel, lambda c, pid, ch, payload: queue.put_nowait(payload))


@wrong("q4", expect="returned 0 payloads")
async def collect_notifications_does_not_wait(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(c, pid, ch, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        payloads = []
        while not queue.empty() and len(payloads) < n:
            payloads.append(queue.get_nowait())
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="never called conn.add_listener")
async def collect_notifications_plain_listen(conn, channel, n):
    await conn.execute("SELECT 1")  # LISTEN alone, without a callback, delivers nothing to Python
    await asyncio.sleep(10)
    return []


@wrong("q4", expect="never awaited")
async def collect_notifications_add_listener_not_awaited(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(c, pid, ch, payload):
        queue.put_nowait(payload)

    conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="payload strings as sent")
async def collect_notifications_decodes_json(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(c, pid, ch, payload):
        queue.put_nowait(json.loads(payload))

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="even when the waiting is interrupted")
async def collect_notifications_remove_without_finally(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(c, pid, ch, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    payloads = [await queue.get() for _ in range(n)]
    await conn.remove_listener(channel, on_notify)  # skipped when the wait is cancelled
    return payloads


@wrong("q4", expect="still listens on")
async def collect_notifications_listens_by_hand(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(c, pid, ch, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)
        await conn.execute(f'LISTEN "{channel}"')  # "to be sure": the server goes on sending


# --- added for issue 9 ------------------------------------------------------------------------

@wrong("q1", expect="not one written into your code")
async def load_lines_fixed_table(conn, table, rows):
    status = await conn.copy_records_to_table("staging_lines", records=rows, columns=COLUMNS)
    return int(status.split()[-1])


@wrong("q1", expect="0 of the 2000 rows arrived through COPY")
async def load_lines_insert_select_from_copy(conn, table, rows):
    # COPY into a temporary table, then an INSERT ... SELECT: the rows reach the table by INSERT
    async with conn.transaction():
        await conn.execute("CREATE TEMP TABLE incoming (invoice_line_id integer, invoice_id integer, "
                           "track_id integer, unit_price numeric(10, 2), quantity integer) "
                           "ON COMMIT DROP")
        status = await conn.copy_records_to_table("incoming", records=rows)
        await conn.execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) "  # the mistake
                           f"SELECT {', '.join(COLUMNS)} FROM incoming")
    return int(status.split()[-1])


@correct("q1")
async def load_lines_copy_to_table_from_csv(conn, table, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    if count == 0:
        return 0
    source = io.BytesIO(buffer.getvalue().encode())
    await conn.copy_to_table(table, source=source, columns=COLUMNS, format="csv")
    return count


@correct("q1")
async def load_lines_counting_generator(conn, table, rows):
    status = await conn.copy_records_to_table(table, records=(tuple(r) for r in rows),
                                              columns=list(COLUMNS))
    return int(status.rsplit(" ", 1)[1])


_POOLS = {}


@wrong("q2", expect="returned the very pool of the first call")
async def make_pool_cached_per_dsn(dsn, size):
    if dsn not in _POOLS:
        async def init(conn):
            await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                      schema="pg_catalog")

        _POOLS[dsn] = await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)
    return _POOLS[dsn]


@wrong("q2", expect="your decoder raised JSONDecodeError")
async def make_pool_binary_format(dsn, size):
    async def init(conn):
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog", format="binary")

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)


@correct("q2")
async def make_pool_with_jsonb_and_json(dsn, size):
    async def init(conn):
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads,
                                      schema="pg_catalog")

    pool = asyncpg.create_pool(dsn, min_size=size, max_size=size, init=init)
    await pool  # a pool made, then started by awaiting it
    return pool


_STATEMENT = None


@wrong("q3", expect="prepared 0 statement(s) there")
async def prices_for_statement_in_a_global(conn, track_ids):
    global _STATEMENT  # the mistake
    if _STATEMENT is None:
        _STATEMENT = await conn.prepare("SELECT unit_price FROM track WHERE track_id = $1")
    return [await _STATEMENT.fetchval(track_id) async for track_id in track_ids]


@wrong("q3", expect="collected the ids first")
async def prices_for_collects_ids_first(conn, track_ids):
    ids = [track_id async for track_id in track_ids]
    stmt = await conn.prepare("SELECT unit_price FROM track WHERE track_id = $1")
    return [await stmt.fetchval(track_id) for track_id in ids]


@correct("q3")
async def prices_for_with_fetchrow(conn, track_ids):
    stmt = await conn.prepare("SELECT unit_price FROM track WHERE track_id = $1::int")
    prices = []
    async for track_id in track_ids:
        row = await stmt.fetchrow(track_id)
        prices.append(None if row is None else row["unit_price"])
    return prices


@wrong("q4", expect="instead of letting the CancelledError through")
async def collect_notifications_swallows_cancellation(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    got = []
    try:
        while len(got) < n:
            got.append(await queue.get())
    except asyncio.CancelledError:
        pass  # the mistake: returns what it has, as if all had arrived
    finally:
        await conn.remove_listener(channel, on_notify)
    return got


@wrong("q4", expect="remove_listener() was called but never awaited")
async def collect_notifications_remove_not_awaited(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        conn.remove_listener(channel, on_notify)  # the mistake


@correct("q4")
async def collect_notifications_with_wait_for_each(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        payloads = []
        for _ in range(n):
            payloads.append(await queue.get())
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


# --- a free track's price, notifications that come slowly or empty -----------------------------

PRICE = "SELECT unit_price FROM track WHERE track_id = $1"


@wrong("q3", expect="a truthiness test")
async def prices_for_or_none(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    return [await stmt.fetchval(track_id) or None async for track_id in track_ids]


@wrong("q3", expect="a truthiness test")
async def prices_for_row_price_if_price(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    prices = []
    async for track_id in track_ids:
        row = await stmt.fetchrow(track_id)
        prices.append(row["unit_price"] if row and row["unit_price"] else None)
    return prices


@correct("q3")
async def prices_for_row_is_none(conn, track_ids):
    stmt = await conn.prepare(PRICE)
    prices = []
    async for track_id in track_ids:
        row = await stmt.fetchrow(track_id)
        prices.append(None if row is None else row["unit_price"])
    return prices


@wrong("q4", expect="went on listening while 5 more arrived, one after another, sleeping in asyncio.sleep()")
async def collect_notifications_after_a_fixed_sleep(conn, channel, n):
    payloads = []

    def on_notify(connection, pid, channel, payload):
        payloads.append(payload)

    await conn.add_listener(channel, on_notify)
    try:
        await asyncio.sleep(0.5)  # "enough time" for them to arrive
        return payloads[:n]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="went on listening while 5 more arrived, one after another, sleeping in asyncio.sleep()")
async def collect_notifications_after_a_long_fixed_sleep(conn, channel, n):
    payloads = []

    def on_notify(connection, pid, channel, payload):
        payloads.append(payload)

    await conn.add_listener(channel, on_notify)
    try:
        await asyncio.sleep(2.5)
        return payloads[:n]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="when the notifications came slowly")
async def collect_notifications_with_a_timeout_per_item(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        for _ in range(n):
            try:
                payloads.append(await asyncio.wait_for(queue.get(), 0.5))
            except TimeoutError:
                break  # "no more are coming"
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="after only one notification, during a pause of 5.5 s and before anything cancelled it")
async def collect_notifications_with_a_longer_timeout_per_item(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        for _ in range(n):
            try:
                async with asyncio.timeout(1.5):
                    payloads.append(await queue.get())
            except TimeoutError:
                break
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="the empty payload '' was dropped")
async def collect_notifications_skips_empty_payloads(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        if payload:
            queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_with_a_future(conn, channel, n):
    payloads = []
    enough = asyncio.get_running_loop().create_future()

    def on_notify(connection, pid, channel, payload):
        payloads.append(payload)
        if len(payloads) >= n and not enough.done():
            enough.set_result(None)

    await conn.add_listener(channel, on_notify)
    try:
        if n > 0:
            await enough
        return payloads[:n]
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_with_an_event_and_a_list(conn, channel, n):
    payloads = []
    arrived = asyncio.Event()

    def on_notify(connection, pid, channel, payload):
        payloads.append(payload)
        arrived.set()

    await conn.add_listener(channel, on_notify)
    try:
        while len(payloads) < n:
            arrived.clear()
            await arrived.wait()
        return payloads[:n]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="expected the first 0 of the 1 sent")
async def collect_notifications_tests_the_count_after_waiting(conn, channel, n):
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        while True:
            payloads.append(await queue.get())
            if len(payloads) >= n:
                return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_none_wanted_without_listening(conn, channel, n):
    if n == 0:
        return []
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q1", expect="with no rows, load_lines should load nothing and return 0")
async def load_lines_counts_the_whole_table(conn, table, rows):
    await conn.copy_records_to_table(table, records=rows, columns=synthetic.INVOICE_LINE_COLUMNS)
    return await conn.fetchval(f'SELECT count(*) FROM "{table}"')  # the check's table


@wrong("q1", expect="already quoted")
async def load_lines_quotes_the_name_itself(conn, table, rows):
    status = await conn.copy_records_to_table(f'"{table}"', records=rows, columns=COLUMNS)
    return int(status.split()[-1])


# --- q4: a timeout per notification, or a sleep, instead of waiting for n -------------------------

def _queue_and_callback():
    queue = asyncio.Queue()

    def on_notify(connection, pid, channel, payload):
        queue.put_nowait(payload)

    return queue, on_notify


@wrong("q4", expect="after only one notification, during a pause of 5.5 s and before anything cancelled it")
async def collect_notifications_with_wait_for_two_seconds_each(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        while len(payloads) < n:
            try:
                payloads.append(await asyncio.wait_for(queue.get(), timeout=2))
            except TimeoutError:
                break  # "nothing more is coming"
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="after only one notification, during a pause of 5.5 s and before anything cancelled it")
async def collect_notifications_with_a_five_second_timeout_each(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        for _ in range(n):
            try:
                async with asyncio.timeout(5):
                    payloads.append(await queue.get())
            except TimeoutError:
                return payloads
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="raised TimeoutError after 1 of 3 notifications, during a pause of 5.5 s")
async def collect_notifications_lets_a_per_item_timeout_escape(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    try:
        return [await asyncio.wait_for(queue.get(), timeout=3) for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="raised TimeoutError after 1 of 3 notifications, during a pause of 5.5 s")
async def collect_notifications_with_a_short_deadline_of_its_own(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    try:
        async with asyncio.timeout(4):  # one deadline, but its own, and shorter than the wait
            return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="raised TimeoutError after 1 of 4 notifications that came with pauses under a second")
async def collect_notifications_with_a_tight_timeout_each(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    try:
        return [await asyncio.wait_for(queue.get(), timeout=0.15) for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@wrong("q4", expect="went on listening while 5 more arrived, one after another, sleeping in asyncio.sleep()")
async def collect_notifications_polling_a_list(conn, channel, n):
    payloads = []

    def on_notify(connection, pid, channel, payload):
        payloads.append(payload)

    await conn.add_listener(channel, on_notify)
    try:
        while len(payloads) < n:
            await asyncio.sleep(0.2)
        return payloads[:n]
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_under_one_deadline_of_its_own(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    try:
        async with asyncio.timeout(60):  # one overall deadline, far beyond the check's pauses
            return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_wait_for_around_the_whole_loop(conn, channel, n):
    queue, on_notify = _queue_and_callback()

    async def all_of_them():
        return [await queue.get() for _ in range(n)]

    await conn.add_listener(channel, on_notify)
    try:
        return await asyncio.wait_for(all_of_them(), timeout=120)
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_with_a_task_group(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    try:
        async with asyncio.TaskGroup() as group:  # the queue hands items to getters in order
            gets = [group.create_task(queue.get()) for _ in range(n)]
        return [get.result() for get in gets]
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_retrying_a_timeout_per_item(conn, channel, n):
    queue, on_notify = _queue_and_callback()
    await conn.add_listener(channel, on_notify)
    payloads = []
    try:
        while len(payloads) < n:
            try:
                payloads.append(await asyncio.wait_for(queue.get(), timeout=1))
            except TimeoutError:
                continue  # still waiting: the caller decides when to give up
        return payloads
    finally:
        await conn.remove_listener(channel, on_notify)


@correct("q4")
async def collect_notifications_with_an_async_callback(conn, channel, n):
    queue = asyncio.Queue()

    async def on_notify(connection, pid, channel, payload):
        await queue.put(payload)

    await conn.add_listener(channel, on_notify)
    try:
        return [await queue.get() for _ in range(n)]
    finally:
        await conn.remove_listener(channel, on_notify)
