"""What the exercises of lesson 04 share: the statements a learner's call runs, and its rows."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg import introspection

from course.checking.checks import call
from course.checking.rows import rows_of


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
    return rows_of(got, what, "conn.fetch")


def _quoted(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)
