"""q1: a COPY loader."""

from __future__ import annotations

import random
from typing import Any

import asyncpg

from course import synthetic
from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.checking.pg_copies import connected_copy

from ._common import _Mapped, _Spy

# The staging table has a column before the five and one after them, both with defaults: tuples
# of five values fit only when COPY is told which columns they fill. The check loads two tables,
# the second with a name that needs quoting, so that a name written into the code shows.
STAGING = "staging_lines"
SECOND_STAGING = "Staging Lines Q2"
STAGING_DDL = """
    CREATE UNLOGGED TABLE {table} (
        batch text NOT NULL DEFAULT 'check',
        invoice_line_id integer NOT NULL,
        invoice_id integer NOT NULL,
        track_id integer NOT NULL,
        unit_price numeric(10, 2) NOT NULL,
        quantity integer NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
    )
"""
COLUMNS = ", ".join(synthetic.INVOICE_LINE_COLUMNS)
LOAD_SIZE = 2_000
COPY_EXAMPLE = ("`await conn.copy_records_to_table(table, records=rows, columns=...)` (or "
                "copy_to_table from a file-like source)")


def _quoted(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


class _CopySpy(_Spy):
    """A _Spy that also counts the rows each COPY call added to the staging table (its row count
    before and after the call), so that rows loaded another way cannot pass for copied ones."""

    COPIES = ("copy_records_to_table", "copy_to_table")

    def __init__(self, conn: asyncpg.Connection, table: str) -> None:
        super().__init__(conn)
        self.copied = 0
        self.count_sql = f"SELECT count(*) FROM {_quoted(table)}"  # noqa: S608 -- a table of the check

    def __getattr__(self, name: str) -> Any:
        method = super().__getattr__(name)
        if name not in self.COPIES:
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            return _Counted(method(*args, **kwargs), self)

        return counted

    def copies(self) -> int:
        return sum(self.count(name) for name in self.COPIES)


class _Counted(_Mapped):
    """Awaits a COPY coroutine between two counts of the staging table, and adds the difference
    to spy.copied. Not awaited, it leaves the warning about the real method, as _Mapped does."""

    def __init__(self, coro: Any, spy: _CopySpy) -> None:
        super().__init__(coro, lambda result: result)
        self._spy = spy

    def __await__(self) -> Any:
        conn = self._spy._conn
        before = yield from conn.fetchval(self._spy.count_sql).__await__()
        result = yield from self._coro.__await__()
        self._spy.copied += (yield from conn.fetchval(self._spy.count_sql).__await__()) - before
        return result


async def _check_load_lines(load_lines) -> str:
    async with connected_copy("check_05_q1") as (conn,):
        for table in (STAGING, SECOND_STAGING):
            await conn.execute(STAGING_DDL.format(table=_quoted(table)))
        await _load_case(conn, load_lines, STAGING, LOAD_SIZE, seed=5)
        await _load_case(conn, load_lines, SECOND_STAGING, random.randint(1, 300),
                         seed=random.randint(6, 10_000))
        empty = await call(load_lines, _Spy(conn), STAGING, iter(()))
        if empty != 0:
            raise Wrong(f"with no rows, load_lines should load nothing and return 0, not "
                        f"{empty!r}.")
        return (f"{LOAD_SIZE} rows, then a random number into a table whose name needs "
                "quoting, all in by COPY from a generator, into the right columns.")


async def _load_case(conn: asyncpg.Connection, load_lines, table: str, size: int, seed: int) -> None:
    spy = _CopySpy(conn, table)
    rows = synthetic.invoice_lines(size, seed=seed)  # a generator, as in a real import
    what = f"load_lines(conn, {table!r}, rows)"
    try:
        got = await call(load_lines, spy, table, rows)
    except LearnerError as exc:
        copies = [kw for name, _, kw in spy.calls if name in _CopySpy.COPIES]
        if copies and not any(kw.get("columns") for kw in copies):
            raise Wrong("the table has more columns than your tuples (a `batch` column first, a "
                        "`loaded_at` column last, both with defaults), so COPY must be told which "
                        "columns the five values fill: pass columns=synthetic.INVOICE_LINE_COLUMNS "
                        "(or the list of the five names).") from None
        if "has no len()" in str(exc):
            raise Wrong("rows is a generator here (as in a real import), so len(rows) and "
                        "rows[i] fail. Pass it straight to records=, which accepts any iterable.") from None
        named = [(args[0] if args else kw.get("table_name")) for name, args, kw in spy.calls
                 if name in _CopySpy.COPIES]
        quoted = [t for t in named if isinstance(t, str) and t != table and t.startswith('"')]
        if quoted and isinstance(exc.__cause__, asyncpg.UndefinedTableError):
            raise Wrong(f"you gave COPY the table name already quoted, {quoted[0]!r}, and it "
                        f"quoted it again, so PostgreSQL looked for a table whose name includes "
                        f"the quotes ({exc}). Pass the bare name, `table`: "
                        "copy_records_to_table quotes it for you.") from None
        if table == SECOND_STAGING and isinstance(exc.__cause__, asyncpg.PostgresError):
            raise Wrong(f"{what} failed ({exc}): the table's name has spaces and capitals, so "
                        "it must be quoted as an identifier. Pass the name to COPY as it is "
                        "(copy_records_to_table quotes it); don't write it into SQL "
                        "yourself.") from None
        raise
    count_sql = spy.count_sql
    statements = spy.count("execute") + spy.count("fetchval") + spy.count("fetch")
    if not spy.copies():
        if spy.count("executemany"):
            raise Wrong("you loaded the rows with executemany: that works, but this exercise asks "
                        f"for COPY, the fastest way in: {COPY_EXAMPLE}.")
        if statements >= 100:
            raise Wrong(f"you ran one statement per row ({statements} statements for {size} "
                        f"rows): each waits for a round trip. Send them all at once with COPY: "
                        f"{COPY_EXAMPLE}.")
        raise Wrong(f"the rows must go in with COPY: {COPY_EXAMPLE}.")
    count = await conn.fetchval(count_sql)
    if count != size:
        other = await conn.fetchval(f"SELECT count(*) FROM {_quoted(STAGING)}")  # noqa: S608 -- a table of the check
        if table != STAGING and count == 0:
            raise Wrong(f"{what} put nothing into {table!r} (the {STAGING!r} table now holds "
                        f"{other} rows): load into the table named by the `table` argument, "
                        "not one written into your code.")
        raise Wrong(f"the table {table!r} holds {count} rows after loading {size}: every row "
                    "must land, once.")
    if spy.copied != size:
        other = ("executemany" if spy.count("executemany") else
                 "INSERT statements" if statements else "another way")
        raise Wrong(f"only {spy.copied} of the {size} rows arrived through COPY; the others "
                    f"went in by {other}. Load every row with COPY: {COPY_EXAMPLE}.")
    stored = await conn.fetch(f"SELECT {COLUMNS} FROM {_quoted(table)} ORDER BY invoice_line_id")  # noqa: S608 -- fixed names
    if synthetic.checksum(stored) != synthetic.checksum(synthetic.invoice_lines(size, seed=seed)):
        raise Wrong("the rows in the table differ from the rows given: load the tuples as they "
                    "are, into the five columns in the order of synthetic.INVOICE_LINE_COLUMNS.")
    if await conn.fetchval(f"SELECT count(*) FROM {_quoted(table)} WHERE batch <> 'check'"):  # noqa: S608 -- fixed names
        raise Wrong("the `batch` column should keep its default: copy into the five columns only.")
    if isinstance(got, str):
        raise Wrong(f"load_lines returned {got!r}, the status string of COPY; return the number "
                    "of rows as an int: `int(status.split()[-1])`.")
    if not isinstance(got, int) or isinstance(got, bool) or got != size:
        raise Wrong(f"{what} should return the number of rows it loaded, {size} (an int), not "
                    f"{got!r}. Read it from the status COPY returns, 'COPY {size}'.")
    if conn.is_in_transaction():
        raise Wrong("load_lines left its connection inside an open transaction, so nothing is "
                    "committed: use `async with conn.transaction():`, or none (COPY is one "
                    "statement, all or nothing already).")


q1 = Exercise(
    "q1", "load_lines", _check_load_lines,
    hints=["One call does it all: `await conn.copy_records_to_table(table, records=rows, "
           "columns=...)`. It accepts any iterable of tuples, a generator included.",
           "The table has extra columns with defaults, so name the five your tuples fill: "
           "`columns=synthetic.INVOICE_LINE_COLUMNS`.",
           "copy_records_to_table returns a status string such as 'COPY 2000'; return "
           "`int(status.split()[-1])`."],
    title="A COPY loader",
)
