"""A connection that watches the SQL it is given (lesson 03's q1 to q4)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import aiosqlite


class _WatchedCursor(aiosqlite.Cursor):
    """A real aiosqlite cursor that reports each statement it runs to its _Watched connection."""

    def __init__(self, watch: _Watched, cursor: aiosqlite.Cursor) -> None:
        super().__init__(cursor._conn, cursor._cursor)  # the same sqlite3 cursor, watched
        self._watch = watch

    async def execute(self, sql: str, parameters: Any = None) -> aiosqlite.Cursor:
        self._watch.seen(sql, many=False)
        return await super().execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Any) -> aiosqlite.Cursor:
        self._watch.seen(sql, many=True)
        return await super().executemany(sql, parameters)

    async def executescript(self, sql_script: str) -> aiosqlite.Cursor:
        self._watch.seen(sql_script, many=False)
        return await super().executescript(sql_script)


class _WatchedResult:
    """What aiosqlite's execute(), executemany() and cursor() return (awaitable, or an async
    context manager that closes the cursor), with the cursor watched too."""

    def __init__(self, watch: _Watched, result: Any) -> None:
        self._watch = watch
        self._result = result
        self._cursor: _WatchedCursor | None = None

    def __await__(self) -> Generator[Any, None, _WatchedCursor]:
        cursor = yield from self._result.__await__()
        return _WatchedCursor(self._watch, cursor)

    async def __aenter__(self) -> _WatchedCursor:
        self._cursor = await self
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class _Watched:
    """Passes everything to the real connection, recording the text of every statement run
    through it or through its cursors, and whether executemany ran it."""

    _OWN = frozenset({"_db", "statements"})

    def __init__(self, db: aiosqlite.Connection) -> None:
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "statements", [])

    def seen(self, sql: Any, *, many: bool) -> None:
        self.statements.append((str(sql), many))

    def execute(self, sql: str, parameters: Any = None) -> _WatchedResult:
        self.seen(sql, many=False)
        return _WatchedResult(self, self._db.execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any) -> _WatchedResult:
        self.seen(sql, many=True)
        return _WatchedResult(self, self._db.executemany(sql, parameters))

    def executescript(self, sql_script: str) -> _WatchedResult:
        self.seen(sql_script, many=False)
        return _WatchedResult(self, self._db.executescript(sql_script))

    def cursor(self) -> _WatchedResult:
        return _WatchedResult(self, self._db.cursor())

    def execute_insert(self, sql: str, parameters: Any = None) -> Any:
        self.seen(sql, many=False)
        return self._db.execute_insert(sql, parameters)

    def execute_fetchall(self, sql: str, parameters: Any = None) -> Any:
        self.seen(sql, many=False)
        return self._db.execute_fetchall(sql, parameters)

    def touching(self, table: str) -> tuple[int, int]:
        """Statements naming `table`: (run one by one, run by executemany)."""
        hits = [many for sql, many in self.statements if table in sql.lower()]
        return hits.count(False), hits.count(True)

    def pasted(self, value: str) -> bool:
        """Whether `value` (longer than one character) appears in the text of some statement:
        the learner built the SQL from it instead of binding it."""
        needle = value.casefold()
        return len(value) > 1 and any(needle in sql.casefold() for sql, _ in self.statements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._db, name, value)  # row_factory and the like belong to the connection
