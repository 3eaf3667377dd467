"""The room: each check's verdict, recorded for the instructor's live view (opt-in).

When the instructor sets `COURSE_ROOM=<name>` (with `DATABASE_URL`, the shared server), every
check of a workbook also writes one row to the table `course_room_verdict` on that server:
the room, the learner's name (as the course names their databases), the exercise (`04.q2`),
the status, the first line of the message and the time. Nothing else: not the learner's code.
Without `COURSE_ROOM` nothing is sent anywhere, and no connection is attempted.

The write never delays or changes a verdict: `record()` only puts the row on a queue, and a
daemon thread with its own event loop sends it (short timeouts, parameters bound). If sending
fails, the learner reads one quiet line, once per kernel, at their next check.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from course.db.postgres import ROOM_TABLE

TABLE = ROOM_TABLE            # "course_room_verdict", on the server in DATABASE_URL
CHANNEL = "course_room"      # NOTIFY channel: the view refreshes when a verdict arrives
CONNECT_TIMEOUT = 3.0        # seconds; a server that does not answer is given up quickly
WRITE_TIMEOUT = 5.0          # seconds for one batch, connection included
RETRY_AFTER = 30.0           # seconds without trying again after a failure
IDLE_CLOSE = 60.0            # seconds without a verdict before the connection is closed
MESSAGE_CHARS = 300
SETUP_LOCK = 7_406_002       # an advisory-lock key: one kernel creates the table at a time

# The table, for the instructor (`python -m course room --setup`) and for a kernel that finds
# it missing on a server where its role may create it.
SETUP_SQL = f"""\
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room text NOT NULL,
    learner text NOT NULL,
    exercise text NOT NULL,
    status text NOT NULL,
    message text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_room ON {TABLE} (room, learner, exercise, id)"""

INSERT = (f"INSERT INTO {TABLE} (room, learner, exercise, status, message, at) "  # noqa: S608 -- constant table name
          "VALUES ($1, $2, $3, $4, $5, $6)")


@dataclass(frozen=True)
class Verdict:
    """One row of the table."""

    room: str
    learner: str
    exercise: str   # "04.q2"
    status: str     # an Outcome's status: "correct", "wrong", "not attempted", "busy", "error"
    message: str    # its first line
    at: datetime


def room_name() -> str:
    """The room this kernel records into, or "" (COURSE_ROOM unset: nothing is recorded)."""
    return os.environ.get("COURSE_ROOM", "").strip()[:100]


def learner_name() -> str:
    """The learner, named as their databases are (JUPYTERHUB_USER, COURSE_USER or the login)."""
    from course.db.postgres import _learner_prefix

    return _learner_prefix()


def status() -> str:
    """One paragraph for the learner: whether this kernel's checks are recorded, and what."""
    room = room_name()
    if not room:
        return ("This kernel sends your checks nowhere: COURSE_ROOM is not set, so your verdicts "
                "stay in your own progress (`make progress`).")
    if not os.environ.get("DATABASE_URL", "").strip():
        return (f"COURSE_ROOM is set ({room!r}) but DATABASE_URL is not, so nothing is recorded: "
                "your verdicts stay in your own progress (`make progress`).")
    return (f"This kernel records each check you run in a workbook for your instructor, in room "
            f"{room!r} on the server in DATABASE_URL: your name ({learner_name()}), the exercise "
            "(such as 04.q2), ✅/❌/⏳, the first line of the check's message, and the time. "
            "Not your code, nor anything else. Checks run in lessons are not recorded.")


async def ensure_table(conn: asyncpg.Connection) -> None:
    """Create the table if it is missing (one kernel at a time)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK)
        await conn.execute(SETUP_SQL)


_STOP = object()


class Recorder:
    """Sends one learner's verdicts to the shared server from a daemon thread."""

    def __init__(self, room: str, learner: str, dsn: str) -> None:
        self.room, self.learner, self.dsn = room, learner, dsn
        self.problem = ""          # why the last write failed, for the one quiet line
        self.sent = 0              # rows written
        self._queue: queue.Queue[Verdict | object] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._conn: asyncpg.Connection | None = None
        self._failed_at = -RETRY_AFTER

    def record(self, exercise: str, status: str, message: str) -> None:
        """Queue one verdict; returns at once (a full queue drops it)."""
        first = message.strip().splitlines()[0][:MESSAGE_CHARS] if message.strip() else ""
        verdict = Verdict(self.room, self.learner, exercise, status, first, datetime.now(UTC))
        try:
            self._queue.put_nowait(verdict)
        except queue.Full:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="course-room", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread (tests; a kernel just exits)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_CLOSE)
                except queue.Empty:
                    runner.run(self._disconnect())
                    continue
                batch = [first]
                while not self._queue.empty() and len(batch) < 100:
                    batch.append(self._queue.get_nowait())
                rows = [v for v in batch if isinstance(v, Verdict)]
                if rows and time.monotonic() - self._failed_at >= RETRY_AFTER:
                    runner.run(self._send(rows))
                if any(v is _STOP for v in batch):
                    runner.run(self._disconnect())
                    return

    async def _send(self, rows: list[Verdict]) -> None:
        args = [(v.room, v.learner, v.exercise, v.status, v.message, v.at) for v in rows]
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
                try:
                    await self._write(args)
                except asyncpg.UndefinedTableError:
                    await ensure_table(self._conn)
                    await self._write(args)
            self.sent += len(rows)
        except Exception as exc:  # any failure only costs the room its rows
            self._failed_at = time.monotonic()
            self.problem = _why(exc)
            await self._disconnect()

    async def _write(self, args: list[tuple]) -> None:
        assert self._conn is not None
        async with self._conn.transaction():
            await self._conn.executemany(INSERT, args)
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.room)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()


def _why(exc: BaseException) -> str:
    """A short reason, never a DSN or a password."""
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (f"the server refused the write (ask your instructor to run "
                f"`python -m course room --setup`, which creates {TABLE} and says what to GRANT)")
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    return type(exc).__name__


_recorder: Recorder | None = None
_notice_shown = False


def record(lesson: str, name: str, status: str, message: str) -> None:
    """Record a check's verdict for the room, if COURSE_ROOM is set. Never raises, never waits.

    Checks run in lessons and solutions are demonstrations, not the learner's: not recorded."""
    global _recorder, _notice_shown
    room = room_name()
    if not room or not os.environ.get("DATABASE_URL", "").strip():
        return
    try:
        from course.checking import progress
        from course.db.postgres import _shared_server_url

        if progress._outside_workbooks():
            return
        dsn, learner = _shared_server_url() or "", learner_name()
        if _recorder is None or (_recorder.room, _recorder.learner, _recorder.dsn) != (room, learner, dsn):
            _recorder = Recorder(room, learner, dsn)
        _recorder.record(f"{lesson}.{name}", status, message)
        problem = _recorder.problem
    except Exception as exc:  # a malformed DATABASE_URL, say
        problem = type(exc).__name__
    if problem and not _notice_shown:
        _notice_shown = True
        print(f"(room {room!r}: your checks could not be sent to your instructor's view: {problem}. "
              "Your verdicts are not affected.)")


def _identifier(name: str) -> str:
    """A role name quoted for SQL (identifiers cannot be bound)."""
    return '"' + name.replace('"', '""') + '"'


async def setup(url: str, learners: str = "", viewer: str = "") -> None:
    """Create the table as its owner; let `learners` INSERT into it and `viewer` SELECT it."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await ensure_table(conn)
        if learners:
            await conn.execute(f"GRANT INSERT ON {TABLE} TO {_identifier(learners)}")
        if viewer:
            await conn.execute(f"GRANT SELECT ON {TABLE} TO {_identifier(viewer)}")
    finally:
        await conn.close()
