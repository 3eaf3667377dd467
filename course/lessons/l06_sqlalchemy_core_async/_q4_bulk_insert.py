"""q4: a bulk insert in one executemany, committed all or nothing."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from course import synthetic
from course.checking.backends import backend_name, on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong, must_raise
from course.probes import StatementCounter

from ._common import LIMIT, leaked, lines_table, made, run

BULK = 7_000   # x 5 columns = 35 000 values: more than one statement may bind on either backend


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def _check_load_lines(load_lines) -> str:
    async def cases(engine: AsyncEngine, backend: str) -> None:
        table = await made(engine, lines_table(MetaData(), "line_load"))
        await _load_cases(engine, table, load_lines, backend)

    await on_each_backend("check_06_q4", cases)
    return (f"{BULK} rows in one INSERT executemany, committed; all or nothing; an empty list "
            "inserts nothing, on SQLite and PostgreSQL.")


class _AutocommitInsert(Exception):
    """Raised by the check, before the statement runs, for an INSERT on an AUTOCOMMIT connection."""


class _NoAutocommit(StatementCounter):
    """A StatementCounter that stops an INSERT sent on an AUTOCOMMIT connection before it runs:
    every row of it would commit alone, a disk sync each (thousands of them, a minute on a busy
    machine), and the check already knows the answer is wrong."""

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        super()._on_execute(conn, cursor, statement, parameters, context, executemany)
        if statement.lstrip().upper().startswith("INSERT") and \
                conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            raise _AutocommitInsert(statement)


async def _load_cases(engine: AsyncEngine, table: Table, load_lines, backend: str) -> None:
    first = 1_000_003
    for size, seed in ((1_500, 3), (BULK, 5)):
        made = synthetic.invoice_lines(size, seed, first_id=first)
        rows = [(first + 7 * k, *rest) for k, (_, *rest) in enumerate(made)]  # ids with gaps
        rows.reverse()  # and not in id order
        first += 8 * size
        before = await _count(engine, table)
        with _NoAutocommit(engine) as counter:
            try:
                got = await run(load_lines, engine, table, list(rows))
            except LearnerError as exc:
                if isinstance(exc.__cause__, _AutocommitInsert):
                    raise Wrong(f"load_lines sent its INSERT on a connection set to "
                                "isolation_level='AUTOCOMMIT': each row commits on its own, so "
                                "when a row fails midway the rows before it stayed on "
                                f"{backend_name(backend)} (and {size} rows cost {size} commits). Use "
                                "`async with engine.begin() as conn:`, which commits all the rows "
                                "together or none of them.") from None
                if isinstance(exc.__cause__, IntegrityError):
                    raise Wrong(_refused(size, exc)) from None
                if "Boolean value of this clause" in str(exc):
                    raise Wrong(f"your code raised {exc}: a Column object was compared or tested "
                                "as if it were a plain value (as a dict key, say). Key each dict "
                                "by the column's name, `dict(zip(table.c.keys(), line))`.") from None
                if "too many" in str(exc).lower() or "32767" in str(exc) or "arguments" in str(exc).lower():
                    raise Wrong(f"{size} rows failed ({exc}): `.values(list)` builds one statement "
                                "with a parameter per value, and databases cap those. Pass the list "
                                "as execute()'s second argument instead: an executemany.") from None
                raise
        leaked(engine, "load_lines")
        inserts = [s for s in counter.statements if s.lstrip().upper().startswith("INSERT")]
        if any(str(rows[0][0]) in s for s in inserts):
            raise Wrong("the values are inside your SQL text: bind them (`insert(table)` with a list "
                        "of dicts, or `text()` with `:name` parameters).")
        if len(inserts) > 1:
            raise Wrong(f"load_lines ran {len(inserts)} INSERT statements for {size} rows: one per "
                        "row (or per chunk). Send them all in one call: `await conn.execute("
                        "insert(table), list_of_dicts)`, which is an executemany.")
        stored = await _count(engine, table)
        if stored == before and size:
            raise Wrong(f"after load_lines returned, another connection sees none of the {size} rows: "
                        "they were not committed. `engine.begin()` commits at the end of its block.")
        if stored != before + size:
            raise Wrong(f"load_lines added {stored - before} rows for {size} lines.")
        if got != size:
            raise Wrong(f"load_lines returned {got!r}; expected the number of rows inserted, {size}.")
        async with engine.connect() as conn:
            last = (await conn.execute(select(table).where(table.c.invoice_line_id == rows[-1][0]))).one()
        if tuple(last) != tuple(rows[-1]):
            raise Wrong(f"the last line was stored as {tuple(last)}; expected {rows[-1]}: keep the "
                        "columns in the table's order.")

    before = await _count(engine, table)
    try:
        got = await run(load_lines, engine, table, [])
    except LearnerError as exc:
        raise Wrong(f"load_lines(engine, table, []) raised {exc}. With an empty list, "
                    "`conn.execute(insert(table), [])` runs `INSERT ... DEFAULT VALUES`: return 0 "
                    "without executing anything when there is nothing to insert.") from None
    if (now := await _count(engine, table)) != before or got != 0:
        raise Wrong(f"load_lines(engine, table, []) added {now - before} row(s) and returned {got!r}. "
                    "With an empty list, `conn.execute(insert(table), [])` runs `INSERT ... DEFAULT "
                    "VALUES`, one row of defaults: return 0 without executing anything.")

    clash = [(77, 1, 5, Decimal("0.99"), 1), (78, 1, 6, Decimal("0.99"), 1), (77, 2, 7, Decimal("0.99"), 2)]
    await must_raise(DBAPIError, run(load_lines, engine, table, clash),
                     lambda got: f"two lines with invoice_line_id 77 break the primary key, but "
                                 f"load_lines returned {got!r}: let the error reach the caller.")
    leaked(engine, "load_lines")
    if (now := await _count(engine, table)) != before:
        raise Wrong(f"when one line was refused (a duplicate id), {now - before} line(s) stayed on "
                    f"{backend_name(backend)}: insert all the lines in one call inside `engine.begin()`, so "
                    "they commit together or not at all.")


def _refused(size: int, exc: LearnerError) -> str:
    """What an IntegrityError on the check's good lines (distinct ids, every column) means."""
    text = str(exc).lower()
    if "null" in text:
        return (f"the database refused one of {size} lines, a column without a value ({exc}). "
                "Key each dict by the column's name, `dict(zip(table.c.keys(), line))`: Column "
                "objects or other names as keys leave the columns empty.")
    if "unique" in text or "duplicate" in text:
        return (f"the database refused one of {size} lines as a duplicate ({exc}), though every "
                "invoice_line_id the check sent is different: some line was inserted twice (a "
                "second execute of the same rows, or a retry after a failure). Insert the list "
                "once, in one `await conn.execute(insert(table), rows)`.")
    return (f"the database refused one of {size} good lines ({exc}): store each tuple as it is, "
            "its values in the table's column order.")


q4 = Exercise(
    "q4", "load_lines", _check_load_lines,
    hints=["All the lines can go in one statement: lesson 06 showed execute() taking a list of "
           "rows at once (an executemany). What shape must each row have, and where does the "
           "table keep its column names?",
           "`dict(zip(table.c.keys(), line))` turns a tuple into such a dict; then `await "
           "conn.execute(insert(table), list_of_dicts)`: a list as the second argument makes "
           "SQLAlchemy use the driver's executemany, one call for every row.",
           "Inside `async with engine.begin() as conn:`; and `if not lines: return 0` first, because "
           "an empty list would insert one row of defaults."],
    limit=LIMIT, title="A bulk insert in one call",
)
