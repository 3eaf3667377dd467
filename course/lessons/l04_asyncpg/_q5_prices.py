"""q5: price changes, each in its own savepoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg

from course.checking.cancelling import cancel_in_pg_sleep, pause_trigger
from course.checking.checks import Exercise, LearnerError, Wrong, call, must_raise
from course.checking.invoices import PAUSED_TRACK
from course.checking.pg_copies import connected_copy
from course.probes import InjectedFailure, breaks_after

RULES_DDL = """
    ALTER TABLE track ADD CONSTRAINT track_price_positive CHECK (unit_price > 0);
    CREATE FUNCTION course_lock_track_13() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.track_id = 13 THEN
            RAISE EXCEPTION 'track 13 is locked (a failure injected by the check)';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER lock_track_13 BEFORE UPDATE ON track
        FOR EACH ROW EXECUTE FUNCTION course_lock_track_13();
"""

PRICE_CHANGES = [  # not in id order: the ids come back in this order, not sorted
    (5, Decimal("0.79")),
    (1, Decimal("1.49")),
    (2, Decimal("-0.50")),            # refused: the CHECK constraint
    (3, Decimal("1.29")),
    (13, Decimal("0.89")),            # refused: the trigger
    (4, Decimal("1000000000.00")),    # refused: too large for numeric(10, 2)
    (999_999, Decimal("0.99")),       # no such track: the UPDATE changes no row
]
APPLIED = [5, 1, 3]
MISSING_TRACK = 999_999
PAUSE_UPDATE_15 = pause_trigger(f"pause_update_{PAUSED_TRACK}", "UPDATE", "track", PAUSED_TRACK)
PAUSED_CHANGES = [(19, Decimal("0.59")), (PAUSED_TRACK, Decimal("0.69")), (20, Decimal("0.79"))]
FAILING_CALL_CHANGES = [(16, Decimal("1.11")), (17, Decimal("1.12")), (18, Decimal("1.13"))]


class _FailingUpdates:
    """The connection, except that its second UPDATE fails with an error that is not a refusal
    by the database (as a bug, or a broken network, would): everything else is forwarded. An
    UPDATE counts however it runs: through the connection's own methods, or through a statement
    that `prepare()` returned."""

    QUERIES = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany")

    def __init__(self, conn: asyncpg.Connection, fail_at: int = 2) -> None:
        self._conn = conn
        self._fail_at = fail_at
        self.updates = 0
        self.fired = False

    def counted(self, sql: Any) -> None:
        """Count an UPDATE about to run, and fail the one at fail_at."""
        if "update" in str(sql).lower():
            self.updates += 1
            if self.updates == self._fail_at:
                self.fired = True
                raise InjectedFailure("the connection failed during an UPDATE (a failure "
                                      "injected by the check, not a refusal)")

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._conn, name)
        if name == "prepare":
            async def prepare(sql: Any, *args: Any, **kwargs: Any) -> _FailingStatement:
                return _FailingStatement(self, sql, await target(sql, *args, **kwargs))
            return prepare
        if name not in self.QUERIES:
            return target

        async def query(sql: Any, *args: Any, **kwargs: Any) -> Any:
            self.counted(sql)
            return await target(sql, *args, **kwargs)

        query.__name__ = query.__qualname__ = name
        return query


class _FailingStatement:
    """A prepared statement whose runs are counted by its _FailingUpdates connection."""

    RUNS = ("executemany", "fetch", "fetchrow", "fetchval", "fetchmany")

    def __init__(self, failing: _FailingUpdates, sql: Any, stmt: Any) -> None:
        self._failing = failing
        self._sql = sql
        self._stmt = stmt

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._stmt, name)
        if name not in self.RUNS:
            return target

        async def run(*args: Any, **kwargs: Any) -> Any:
            self._failing.counted(self._sql)
            return await target(*args, **kwargs)

        run.__name__ = run.__qualname__ = name
        return run


def _changes_that_break() -> Iterator[tuple[int, Decimal]]:
    return breaks_after([(6, Decimal("1.11")), (7, Decimal("1.12"))], "the list of changes")


async def _prices(observer: asyncpg.Connection, ids: list[int]) -> dict[int, Decimal]:
    rows = await observer.fetch("SELECT track_id, unit_price FROM track WHERE track_id = any($1::int[])",
                                ids)
    return dict(rows)


async def _check_apply_price_changes(apply_price_changes) -> str:
    async with connected_copy("check_04_q5", 2) as (conn, observer):
        await conn.execute(RULES_DDL + PAUSE_UPDATE_15)
        return await _price_cases(conn, observer, apply_price_changes)


async def _price_cases(conn: asyncpg.Connection, observer: asyncpg.Connection, apply_price_changes) -> str:
    ids = [track_id for track_id, _ in PRICE_CHANGES]
    old = await _prices(observer, ids)
    try:
        applied = await call(apply_price_changes, conn, list(PRICE_CHANGES))
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, asyncpg.InFailedSQLTransactionError):
            raise Wrong("a statement ran after a failed one in the same transaction (\"current "
                        "transaction is aborted\"). Put the try/except *around* the nested `async "
                        "with conn.transaction():`, so the savepoint is rolled back first.") from None
        if isinstance(cause, asyncpg.PostgresError):
            first_line = str(cause).splitlines()[0] if str(cause) else ""
            raise Wrong(f"a refused change stopped everything ({type(cause).__name__}: "
                        f"{first_line}). Skip it instead: catch "
                        "asyncpg.PostgresError around that change's nested transaction.") from None
        raise
    if conn.is_in_transaction():
        raise Wrong("apply_price_changes left its connection inside a transaction: use `async "
                    "with conn.transaction():` for the outer block too, so it commits.")
    if not isinstance(applied, list):
        raise Wrong(f"apply_price_changes should return the list of track_ids it changed, not "
                    f"{type(applied).__name__}.")
    if MISSING_TRACK in applied and [i for i in applied if i != MISSING_TRACK] == APPLIED:
        raise Wrong(f"you returned {applied}, but track {MISSING_TRACK} does not exist: its "
                    "UPDATE changed no row (execute returned 'UPDATE 0'), so it was not changed. "
                    "List only the tracks whose price really changed.")
    if applied != APPLIED:
        refused = [i for i in ids if i not in APPLIED and i != MISSING_TRACK]
        lost = [i for i in APPLIED if i not in applied]
        after_refusal = [i for i in APPLIED if ids.index(i) > ids.index(refused[0])]
        if sorted(applied) == sorted(APPLIED):
            raise Wrong(f"you returned the changed tracks {applied} in another order; return "
                        f"them in the order of `changes`: {APPLIED}.")
        extra = ""
        if lost and lost == after_refusal:
            extra = (f" Tracks {lost} were lost after the first refusal: once a statement fails, "
                     "PostgreSQL refuses everything else in that transaction until a rollback. "
                     "Give each change its own nested `async with conn.transaction():` (a "
                     "savepoint).")
        raise Wrong(f"expected {APPLIED} applied (tracks {refused} are refused by the database); "
                    f"you returned {applied}.{extra}")
    new = await _prices(observer, ids)
    wanted = {i: (price if i in APPLIED else old[i]) for i, price in PRICE_CHANGES if i in old}
    if new != wanted:
        changed = [i for i in ids if i in old and new[i] != old[i]]
        raise Wrong(f"you reported {APPLIED} as applied, but the committed prices changed for "
                    f"{changed}. A failed statement aborts the whole transaction, and COMMIT then "
                    "rolls everything back: isolate each change in a nested `async with "
                    "conn.transaction():`.")

    before = await _prices(observer, [6, 7])
    await must_raise(InjectedFailure, call(apply_price_changes, conn, _changes_that_break()),
                     lambda got: "the list of changes itself failed midway, and "
                                 f"apply_price_changes returned {got!r}. Only refusals from the "
                                 "database are skipped; let other errors propagate (catch "
                                 "asyncpg.PostgresError, not Exception).")
    if conn.is_in_transaction():
        raise Wrong("after an error, the connection was left inside a transaction: use `async "
                    "with conn.transaction():` so it rolls back.")
    if await _prices(observer, [6, 7]) != before:
        raise Wrong("when the list of changes broke midway, the changes made before stayed "
                    "committed. Run the whole loop inside one outer `async with "
                    "conn.transaction():`, so all changes commit together or not at all.")
    injected = await _not_a_refusal(conn, observer, apply_price_changes)
    await _prices_cancelled_midway(conn, observer, apply_price_changes)
    if not injected:
        return ("refused changes skipped, the rest committed together; a broken list of "
                "changes, and a cancellation, undo them all and reach the caller. (An error at "
                "the second UPDATE could not be injected: the check saw fewer than two UPDATEs "
                "run through the connection's methods or a prepared statement.)")
    return ("refused changes skipped, the rest committed together; any other error, and a "
            "cancellation, undo them all and reach the caller.")


async def _not_a_refusal(conn: asyncpg.Connection, observer: asyncpg.Connection,
                         apply_price_changes) -> bool:
    """The connection fails at the second UPDATE with an error that is not the database's
    refusal: it must reach the caller, and nothing may remain. False when the code ran fewer
    than two UPDATEs by the ways the check wraps, so that the error could not be injected."""
    ids = [track_id for track_id, _ in FAILING_CALL_CHANGES]
    before = await _prices(observer, ids)
    failing = _FailingUpdates(conn)
    try:
        got = await call(apply_price_changes, failing, list(FAILING_CALL_CHANGES))
    except LearnerError as exc:
        if not isinstance(exc.__cause__, InjectedFailure):
            raise
    else:
        if failing.fired:
            raise Wrong("the connection's second UPDATE failed with an error that is not a "
                        f"refusal by the database, and apply_price_changes returned {got!r}: it "
                        "skipped that error as if the database had refused the change. Skip only "
                        "the database's refusals (`except asyncpg.PostgresError:`), not every "
                        "Exception; let the rest reach the caller.")
        return False  # no UPDATE failed, so there is nothing more to judge here
    if conn.is_in_transaction():
        raise Wrong("after an error that was not a refusal, the connection was left inside a "
                    "transaction: use `async with conn.transaction():` so it rolls back.")
    if await _prices(observer, ids) != before:
        raise Wrong("when the connection failed at the second UPDATE, the change made before it "
                    "stayed committed. Run the whole loop inside one outer `async with "
                    "conn.transaction():`, so all changes commit together or not at all.")
    return True


async def _prices_cancelled_midway(conn: asyncpg.Connection, observer: asyncpg.Connection,
                                   apply_price_changes) -> None:
    """Cancel a call while the database runs track 15's UPDATE, as a timeout would."""
    ids = [track_id for track_id, _ in PAUSED_CHANGES]
    before = await _prices(observer, ids)
    what = f"apply_price_changes(conn, {[(t, str(p)) for t, p in PAUSED_CHANGES]})"
    outcome, paused = await cancel_in_pg_sleep(
        conn, observer, call(apply_price_changes, conn, list(PAUSED_CHANGES)))
    if isinstance(outcome, Wrong):
        raise outcome
    if not paused:
        if isinstance(outcome, LearnerError):
            raise outcome
        raise Wrong(f"{what} finished without updating track {PAUSED_TRACK}: apply every change.")
    if not isinstance(outcome, asyncio.CancelledError):
        shown = outcome if isinstance(outcome, LearnerError) else repr(outcome)
        raise Wrong(f"cancelled while the database ran an UPDATE (as a timeout would), {what} "
                    f"gave {shown} instead of letting the CancelledError through: a cancellation "
                    "is not a refused change. Catch asyncpg.PostgresError only.")
    if conn.is_in_transaction():
        raise Wrong(f"cancelled midway (as a timeout would), {what} left its connection inside "
                    "the transaction: `except Exception:` does not catch a cancellation "
                    "(CancelledError is a BaseException). Use `async with conn.transaction():` "
                    "for the outer block, which rolls back whatever leaves it.")
    if await _prices(observer, ids) != before:
        raise Wrong(f"cancelled midway, {what} left the change made before committed. Run the "
                    "whole loop inside one outer `async with conn.transaction():`.")


q5 = Exercise(
    "q5", "apply_price_changes", _check_apply_price_changes,
    hints=["Two levels: one outer `async with conn.transaction():` around the loop, and one "
           "nested `async with conn.transaction():` around each change. The nested one is a "
           "SAVEPOINT.",
           "Put `try:` outside the nested block and `except asyncpg.PostgresError: continue` "
           "after it: the block rolls back to its savepoint, then the loop goes on.",
           "Inside the nested block: `status = await conn.execute(\"UPDATE track SET unit_price = "
           "$2 WHERE track_id = $1\", track_id, price)`; after the block, `if status == \"UPDATE "
           "1\": applied.append(track_id)` (a missing track gives 'UPDATE 0')."],
    title="Price changes, each in its own savepoint",
)
