"""What the exercises of lesson 05 share: a connection that records how the learner used it, and a fresh database for each check."""

from __future__ import annotations

from typing import Any

import asyncpg

from course.db.postgres import drop_postgres, fresh_postgres


class _Spy:
    """A connection stand-in that forwards everything to a real asyncpg connection and records
    which methods the learner called (name and keyword arguments), so a check can see *how*
    the work was done, not only its result. Methods are recorded when called, awaited or not."""

    WATCHED = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare",
               "copy_records_to_table", "copy_to_table", "add_listener", "remove_listener",
               "set_type_codec")

    def __init__(self, conn: asyncpg.Connection, wrap_result: dict[str, Any] | None = None) -> None:
        self._conn = conn
        self._wrap_result = wrap_result or {}
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._conn, name)
        if name not in self.WATCHED:
            return target

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            result = target(*args, **kwargs)
            if name in self._wrap_result:
                return _Mapped(result, self._wrap_result[name])
            return result

        return recorded

    def count(self, name: str) -> int:
        return sum(1 for called, _, _ in self.calls if called == name)


class _Mapped:
    """An awaitable that awaits a coroutine and maps its result. Unlike a wrapping coroutine, it
    adds no warning of its own when the learner forgets `await`: the one about the real
    method (say Connection.prepare) is the one the learner needs to see."""

    def __init__(self, coro: Any, fn: Any) -> None:
        self._coro = coro
        self._fn = fn

    def __await__(self) -> Any:
        result = yield from self._coro.__await__()
        return self._fn(result)

    def __getattr__(self, name: str) -> Any:
        # Used without await: fail as the bare coroutine would, so that call() explains it.
        self._coro.close()
        raise AttributeError(f"'coroutine' object has no attribute '{name}'")


async def _with_database(label: str, body: Any) -> str:
    """Run body(db) on a fresh database, and drop it afterwards."""
    db = await fresh_postgres(label)
    try:
        return await body(db)
    finally:
        await drop_postgres(db)
