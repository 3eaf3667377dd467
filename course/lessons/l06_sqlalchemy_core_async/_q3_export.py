"""q3: export a big table as CSV, a partition at a time (a server-side cursor, flat memory)."""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData, Table, event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from course import synthetic
from course.checking.backends import backend_name, on_each_backend
from course.checking.checks import Exercise, Wrong

from ._common import LIMIT, leaked, lines_table, made, run

SMALL, BIG = 5_000, 20_000  # small enough for a row-by-row answer; 4x apart for the memory test
MEMORY_FLOOR = 5_000_000  # bytes; below it, growth is not worth a remark (every row kept: 9 MB)


def _as_dicts(rows: list[tuple]) -> list[dict[str, Any]]:
    return [dict(zip(synthetic.INVOICE_LINE_COLUMNS, row, strict=True)) for row in rows]


async def _fill(engine: AsyncEngine, table: Table, rows: list[tuple]) -> None:
    async with engine.begin() as conn:
        await conn.execute(table.delete())
        if rows:
            await conn.execute(insert(table), _as_dicts(rows))


class CsvSink:
    """A file-like object that keeps a fingerprint of what is written, not the text itself."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.lines = self.crlf = 0

    def write(self, text: str) -> int:
        self._digest.update(text.encode())
        self.lines += text.count("\n")
        self.crlf += text.count("\r\n")
        return len(text)

    @property
    def fingerprint(self) -> str:
        return self._digest.hexdigest()[:16]


def _expected_csv(rows: list[tuple], price: Any = Decimal, end: str = "\r\n") -> str:
    """The fingerprint of the right CSV; with price=float, of one that wrote prices as floats;
    with end="\n", of one whose lines end as a hand-made join's do."""
    sink = CsvSink()
    writer = csv.writer(sink, lineterminator=end)
    for line_id, invoice_id, track_id, unit_price, quantity in sorted(rows):
        writer.writerow((line_id, invoice_id, track_id, price(unit_price), quantity))
    return sink.fingerprint


# prices whose float prints otherwise than the Decimal (synthetic's 0.99 and 1.99 print alike)
ODD_PRICES = (Decimal("0.10"), Decimal("2.00"), Decimal("1.50"))


def _with_odd_prices(rows: list[tuple]) -> list[tuple]:
    return [(line_id, invoice_id, track_id, ODD_PRICES[line_id % 3] if line_id % 10 == 0 else price, quantity)
            for line_id, invoice_id, track_id, price, quantity in rows]


@functools.lru_cache(maxsize=3)
def _export_data(size: int, seed: int) -> tuple[list[tuple], str]:
    """q3's rows for one case, in the order they are inserted, and the fingerprint of the right
    CSV; made once, as both backends (and every answer checked in this process) get the same."""
    rows = _with_odd_prices([(line_id * 3 + 5, *rest)
                             for line_id, *rest in synthetic.invoice_lines(size, seed)])
    rows.reverse()  # inserted out of order: the export must ORDER BY
    return rows, _expected_csv(rows)


@contextlib.contextmanager
def _peak_memory() -> Iterator[list[int]]:
    """Peak of Python allocations (tracemalloc) while the block runs, in bytes."""
    found: list[int] = []
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield found
    finally:
        found.append(max(0, tracemalloc.get_traced_memory()[1] - base))
        if started:
            tracemalloc.stop()


async def _check_export_lines(export_lines) -> str:
    async def cases(engine: AsyncEngine, backend: str) -> None:
        await _export_cases(engine, await made(engine, lines_table(MetaData())), export_lines, backend)

    await on_each_backend("check_06_q3", cases)
    return (f"streamed on a server-side cursor; peak memory did not grow in step with the table "
            f"({SMALL} then {BIG} rows); the same CSV on SQLite and PostgreSQL.")


async def _export_cases(engine: AsyncEngine, table: Table, export_lines, backend: str) -> None:
    found: list[int] = []
    streamed: list[bool] = []  # for each SELECT of the table: did it run on a server-side cursor?

    def watch(conn, cursor, statement, parameters, context, executemany) -> None:
        if table.name in statement and statement.lstrip().upper().startswith("SELECT"):
            streamed.append(bool(context.execution_options.get("stream_results")))

    # an empty table first; then shuffled ids, not contiguous, and two different shops: a
    # canned answer cannot match
    for size, seed in ((0, 3), (SMALL, 7), (BIG, 11)):
        rows, expected = _export_data(size, seed)
        await _fill(engine, table, rows)
        sink = CsvSink()
        streamed.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", watch)
        try:
            async with engine.connect() as conn:
                with _peak_memory() as peak:
                    got = await run(export_lines, conn, table, sink)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", watch)
        leaked(engine, "export_lines")
        if not streamed:
            raise Wrong("export_lines never read the table it was given (`table`).")
        if not all(streamed):
            raise Wrong("export_lines fetched every row at once (conn.execute() buffers the whole "
                        "result before it returns). Stream it: `result = await conn.stream(stmt)`, "
                        "then `async for part in result.partitions(1000):`.")
        if got != size:
            raise Wrong(f"export_lines returned {got!r}; expected the number of rows written, {size}.")
        if sink.lines != size:
            raise Wrong(f"{sink.lines} lines were written for {size} rows: one csv line per row, "
                        "`writer.writerow(row)`, no header.")
        if sink.fingerprint != expected and sink.fingerprint == _expected_csv(rows, float):
            raise Wrong("the prices were written as floats (0.1 for the unit_price 0.10, 2.0 for "
                        "2.00): unit_price is a Decimal, exact to the cent. Write each row's "
                        "values as they come, `writer.writerow(row)`.")
        if sink.fingerprint != expected and sink.fingerprint == _expected_csv(rows, end="\n"):
            raise Wrong("every row's values were right and in order, but each line ended with "
                        "\"\\n\", where csv.writer(out) ends lines with \"\\r\\n\" (and "
                        "quotes a value that holds a comma or a quote): the lines were likely "
                        "built by hand, `\",\".join(...) + \"\\n\"`. Write each row with "
                        "`csv.writer(out).writerow(row)`, as the statement asks.")
        if sink.fingerprint != expected:
            ends = (" Its lines ended with \"\\n\", not csv.writer's \"\\r\\n\": likely "
                    "written by hand." if sink.lines and sink.crlf < sink.lines else "")
            raise Wrong(f"the CSV written on {backend_name(backend)} differs from the table's rows in "
                        "invoice_line_id order: select every column of `table`, ORDER BY "
                        "invoice_line_id, and write each row with csv.writer(out).writerow(row)."
                        + ends)
        found.append(peak[0])
    small, big = found[-2:]
    if big > MEMORY_FLOOR and big > 2 * small:
        raise Wrong(f"you streamed, but memory grew with the table ({big / max(small, 1):.1f}× for "
                    "4× the rows): every row was kept (`await result.all()`, a list of every row, "
                    "or partitions as big as the table). Handle each partition and let it go.")


q3 = Exercise(
    "q3", "export_lines", _check_export_lines,
    hints=["`conn.execute()` returns only when the whole result has arrived. The lesson shows "
           "another AsyncConnection method that hands the rows over as they come, a part at a "
           "time (a server-side cursor).",
           "`result = await conn.stream(select(table).order_by(table.c.invoice_line_id))`, then "
           "`async for part in result.partitions(1000):` hands you lists of at most 1 000 rows; "
           "write them with `writer.writerows(part)` and count them.",
           "`writer = csv.writer(out)` once, before the loop; `return count` at the end."],
    limit=LIMIT, title="Export a big table, a partition at a time",
)
