"""The room: verdicts recorded on the shared server (COURSE_ROOM) and the instructor's live view.

The course's embedded PostgreSQL plays the workshop's shared server. Figures print with -s.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from course.checking import room
from course.db import postgres
from course.lessons import l00_welcome as ex
from course.tools.room_view import agenda_lesson, create_app, serve


def mmss(milliseconds: int) -> str:
    seconds = milliseconds // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def mmss_unpadded(milliseconds: int) -> str:
    seconds = milliseconds // 1000
    return f"{seconds // 60}:{seconds % 60}"


@pytest.fixture(scope="module")
def server() -> str:
    """The DSN of the embedded cluster's maintenance database, with the room's table."""
    dsn = postgres.start_local()
    asyncio.run(room.setup(dsn))
    return dsn


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch) -> Iterator[None]:
    """Each test is a new kernel: no recorder yet, no notice shown yet."""
    monkeypatch.setattr(room, "_recorder", None)
    monkeypatch.setattr(room, "_notice_shown", False)
    yield
    if room._recorder is not None:
        room._recorder.close()


# 00 q1's ✅ line for a right answer, from the check itself (its wording is the check's to change)
RIGHT = asyncio.run(ex.q1.evaluate(mmss)).line


def _check(answer) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        asyncio.run(ex.q1._check(answer))
    return out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_course_room_nothing_is_sent(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    tried: list[str] = []

    async def no_connect(*args, **kwargs):
        tried.append("connect")
        raise AssertionError("no connection may be attempted without COURSE_ROOM")

    monkeypatch.setattr(asyncpg, "connect", no_connect)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:pw@127.0.0.1:{_free_port()}/postgres")
    for value in (None, "", "   "):
        if value is None:
            monkeypatch.delenv("COURSE_ROOM", raising=False)
        else:
            monkeypatch.setenv("COURSE_ROOM", value)
        assert RIGHT.startswith("✅") and _check(mmss) == RIGHT + "\n"
        assert room.status().startswith("This kernel sends your checks nowhere")
    monkeypatch.setenv("COURSE_ROOM", "tuesday")  # a room, but no shared server
    monkeypatch.delenv("DATABASE_URL")
    assert _check(mmss_unpadded).startswith("❌ q1 not yet: mmss(5000) returned '0:5'")
    assert "nothing is recorded" in room.status()
    assert tried == [] and room._recorder is None
    assert not [t for t in threading.enumerate() if t.name == "course-room"]


def test_a_server_that_cannot_be_reached_changes_no_verdict(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_ROOM", "tuesday")
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:s3cret@127.0.0.1:{_free_port()}/postgres")
    assert "records each check" in room.status() and "s3cret" not in room.status()
    outputs = [_check(mmss)]
    recorder = room._recorder
    for _ in range(200):  # the refused connection is seen within a second; 20 s at most
        if recorder.problem:
            break
        time.sleep(0.1)
    assert recorder.problem == "ConnectionRefusedError"
    outputs += [_check(mmss_unpadded), _check(mmss)]
    lines = [line for output in outputs for line in output.splitlines()]
    verdicts = [line for line in lines if not line.startswith("(room")]
    assert verdicts[0] == verdicts[2] == RIGHT
    assert verdicts[1].startswith("❌ q1 not yet: mmss(5000) returned '0:5'") and len(verdicts) == 3
    # one quiet line per kernel, after the verdict of the check that found the problem (or the next)
    assert [line for line in lines if line.startswith("(room")] == [
        "(room 'tuesday': your checks could not be sent to your instructor's view: "
        "ConnectionRefusedError. Your verdicts are not affected.)"]
    assert recorder.sent == 0


def test_checks_run_in_lessons_are_not_recorded(monkeypatch, server) -> None:
    from course.paths import NOTEBOOKS

    monkeypatch.setenv("COURSE_ROOM", "tuesday")
    monkeypatch.setenv("DATABASE_URL", server)
    monkeypatch.chdir(NOTEBOOKS)  # a lesson's kernel runs in notebooks/
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    _check(mmss)
    assert room._recorder is None


async def _read(app, client_get=None) -> dict:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://room") as client:
        response = await client.get("/api/room")
        response.raise_for_status()
        return response.json()


def test_thirty_learners_reach_the_view(monkeypatch, server) -> None:
    """30 simulated learners (one recorder, thread and connection each, as 30 kernels have)
    check q1 wrong, then right; five stay stuck on q2. The view's JSON shows every verdict."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    learners = [f"learner_{i:02d}" for i in range(30)]
    called: dict[tuple[str, str, str], float] = {}
    seen: dict[tuple[str, str, str], float] = {}

    async def learner(i: int, recorder: room.Recorder) -> None:
        await asyncio.sleep(0.05 * i)
        for exercise, answer in [(ex.q1, mmss_unpadded), (ex.q1, mmss)] + \
                ([(ex.q2, lambda track_id: None)] if i < 5 else []):
            outcome = await exercise.evaluate(answer)
            called[(recorder.learner, exercise.key, outcome.status)] = time.monotonic()
            recorder.record(exercise.key, outcome.status, outcome.message)
            await asyncio.sleep(0.3)

    async def main() -> dict:
        recorders = [room.Recorder(name, who, server) for who in learners]
        app = create_app(server, name)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://room") as client:
                done = asyncio.Event()

                async def watch() -> None:
                    # a ❌ soon followed by ✅ may never be read in between: wait for the last ones
                    while not done.is_set() or not all(k in seen for k in called if final(k)):
                        data = (await client.get("/api/room")).json()
                        now = time.monotonic()
                        for c in data["cells"]:
                            key = (c["learner"], c["exercise"], c["status"])
                            seen.setdefault(key, now)
                        await asyncio.sleep(0.05)

                watcher = asyncio.create_task(watch())
                await asyncio.gather(*(learner(i, r) for i, r in enumerate(recorders)))
                done.set()
                await asyncio.wait_for(watcher, 60)
                data = (await client.get("/api/room")).json()
        for r in recorders:
            r.close()
        assert sum(r.sent for r in recorders) == 65 and not any(r.problem for r in recorders)
        return data

    def final(key: tuple[str, str, str]) -> bool:
        return key[2] == "correct" or key[1] == "00.q2"

    data = asyncio.run(main())
    latency = sorted(seen[k] - called[k] for k in called if final(k))
    print(f"\n30 learners: verdict to the view's data, median {statistics.median(latency):.2f} s, "
          f"max {latency[-1]:.2f} s ({len(latency)} verdicts)")
    assert latency[-1] < 20  # generous on a loaded machine; the figure printed is what counts
    assert data["learners"] == learners and data["exercises"] == ["00.q1", "00.q2"]
    cells = {(c["learner"], c["exercise"]): c for c in data["cells"]}
    assert all(cells[(who, "00.q1")]["status"] == "correct" for who in learners)
    assert all(cells[(who, "00.q1")]["tries"] == 1 for who in learners)
    assert [cells[(f"learner_{i:02d}", "00.q2")]["status"] for i in range(5)] == ["wrong"] * 5
    top = data["wrong_lines"][0]
    assert top["exercise"] == "00.q1" and top["count"] == 30
    assert top["message"].startswith("mmss(5000) returned '0:5'; expected '0:05'.")
    assert sorted(s["learner"] for s in data["stuck"]) == [f"learner_{i:02d}" for i in range(5)]
    assert all(s["exercise"] == "00.q2" for s in data["stuck"])
    pace = data["pace"]
    assert pace["agenda_lesson"] == "00" and pace["median_lesson"] == "00"
    assert pace["lessons"][0] == {"lesson": "00", "exercises": 3, "started": 30, "finished": 0}


def test_recording_adds_little_to_a_check(monkeypatch, server, tmp_path) -> None:
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", server)
    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("COURSE_ROOM", name)
    monkeypatch.setenv("COURSE_USER", "timed")

    record = room.record
    costs: list[float] = []

    def timed(*args) -> None:
        start = time.perf_counter()
        record(*args)
        costs.append(time.perf_counter() - start)

    monkeypatch.setattr(room, "record", timed)

    async def main() -> tuple[list[float], list[float]]:
        on, off = [], []
        for i in range(40):  # alternate, so that a stall of the machine hits both alike
            if i % 2:
                monkeypatch.delenv("COURSE_ROOM")
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                await ex.q1._check(mmss)
            (off if i % 2 else on).append(time.perf_counter() - start)
            if i % 2:
                monkeypatch.setenv("COURSE_ROOM", name)
        return on, off

    on, off = asyncio.run(main())
    room._recorder.close()
    assert room._recorder.sent == 20 and not room._recorder.problem

    async def rows() -> list[tuple]:
        conn = await asyncpg.connect(server)
        try:
            return [tuple(r) for r in await conn.fetch(
                f"SELECT DISTINCT learner, exercise, status, message FROM {room.TABLE} "  # noqa: S608
                "WHERE room = $1", name)]
        finally:
            await conn.close()

    assert asyncio.run(rows()) == [("timed", "00.q1", "correct", RIGHT.split(": ", 1)[1])]
    print(f"\nrecord(): median {statistics.median(costs) * 1000:.3f} ms, max {max(costs) * 1000:.3f} ms; "
          f"check with recording median {statistics.median(on) * 1000:.1f} ms (max {max(on) * 1000:.1f}), "
          f"without {statistics.median(off) * 1000:.1f} ms (max {max(off) * 1000:.1f})")
    assert statistics.median(costs) < 0.020


ROLES = ("room_test_learner", "room_test_viewer", "room_test_nobody")


def test_roles_learners_insert_and_the_view_only_reads(server) -> None:
    """The learners' role needs INSERT only; the view works with SELECT only."""
    name = f"test-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        admin = await asyncpg.connect(server)
        try:
            for role in ROLES:
                await admin.execute(f"DROP OWNED BY {role}" if await admin.fetchval(
                    "SELECT 1 FROM pg_roles WHERE rolname = $1", role) else "SELECT 1")
                await admin.execute(f"DROP ROLE IF EXISTS {role}")
                await admin.execute(f"CREATE ROLE {role} LOGIN")
            await room.setup(server, learners="room_test_learner", viewer="room_test_viewer")
            as_learner = server.replace("postgresql://postgres", "postgresql://room_test_learner", 1)
            as_viewer = server.replace("postgresql://postgres", "postgresql://room_test_viewer", 1)
            assert as_learner != server and as_viewer != server
            hostile = "x' OR '1'='1; -- \\ % _ \"quoted\" ✅"
            recorder = room.Recorder(name, "ada", as_learner)
            recorder.record("00.q1", "wrong", "mmss(5000) returned '0:5'\nsecond line")
            recorder.record("00.q2", "wrong", hostile)
            other = room.Recorder(name + "-next-door", "bob", as_learner)  # another room
            other.record("00.q1", "wrong", "not in this room")
            await asyncio.gather(asyncio.to_thread(recorder.close), asyncio.to_thread(other.close))
            assert (recorder.sent, recorder.problem, other.sent) == (2, "", 1)
            data = await _read_app(create_app(as_viewer, name))
            assert [(c["learner"], c["exercise"], c["status"], c["message"]) for c in data["cells"]] \
                == [("ada", "00.q1", "wrong", "mmss(5000) returned '0:5'"), ("ada", "00.q2", "wrong", hostile)]
            as_nobody = server.replace("postgresql://postgres", "postgresql://room_test_nobody", 1)
            async with LifespanManager(create_app(as_nobody, name)) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://room") as client:
                    response = await client.get("/api/room")
            assert response.status_code == 503
            assert response.json()["detail"].startswith(f"this role may not read {room.TABLE}: as its "
                                                        f"owner, GRANT SELECT ON {room.TABLE} TO")
            viewer = await asyncpg.connect(as_viewer)
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await viewer.execute(f"DELETE FROM {room.TABLE}")  # noqa: S608
            finally:
                await viewer.close()
        finally:
            for role in ROLES:
                await admin.execute(f"DROP OWNED BY {role}")
                await admin.execute(f"DROP ROLE {role}")
            await admin.close()

    asyncio.run(main())


async def _read_app(app) -> dict:
    async with LifespanManager(app) as manager:
        return await _read(manager.app)


def test_the_page_is_served_on_loopback_and_pushes_verdicts(server) -> None:
    """`serve()` on 127.0.0.1: the page (no CDN), and an event as soon as a verdict is recorded."""
    name = "tuesday <b>"
    port = _free_port()

    async def main() -> tuple[str, list[str]]:
        started = asyncio.Event()
        task = asyncio.create_task(serve(create_app(server, name), "127.0.0.1", port, started))
        await asyncio.wait_for(started.wait(), 30)
        recorder = room.Recorder(name, "ada", server)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                page = (await client.get("/")).text
                lines = []
                with contextlib.suppress(httpx.HTTPError):
                    async with client.stream("GET", "/events") as stream:
                        async for line in stream.aiter_lines():
                            lines.append(line)
                            if line == "event: hello":
                                sent_at = time.monotonic()
                                recorder.record("00.q1", "correct", "")
                            if line.startswith("event: verdict"):
                                print(f"\nrecorded to the page's event: {time.monotonic() - sent_at:.2f} s")
                                data = (await client.get("/api/room")).json()
                                assert data["learners"] == ["ada"]
                                # Ctrl+C with the page still open: the server stops all the same
                                task.cancel()
                                done, _ = await asyncio.wait({task}, timeout=10)
                                assert task in done, "an open event stream kept the server up"
                                break
        finally:
            task.cancel()
            await asyncio.to_thread(recorder.close)
        assert task.done()
        return page, lines

    page, lines = asyncio.run(main())
    assert "<title>Room tuesday &lt;b&gt;</title>" in page and "<b>" not in page.split("<body>")[0]
    assert "http://" not in page and "https://" not in page
    assert "event: verdict" in lines


def test_agenda_lessons() -> None:
    assert [agenda_lesson(m) for m in (0, 14, 15, 54, 55, 100, 115, 150, 199, 240)] == \
        ["00", "00", "01", "01", "02", "break", "03", "03", "04", "past the half day"]


def test_the_clean_up_drops_the_room_table(monkeypatch, server) -> None:
    monkeypatch.setenv("DATABASE_URL", server)
    assert asyncio.run(postgres.cleanup_room_table(drop=False)).startswith(
        f"would drop the room table {room.TABLE} (")
    assert asyncio.run(postgres.cleanup_room_table()).startswith(f"dropped the room table {room.TABLE} (")
    assert asyncio.run(postgres.cleanup_room_table()) == \
        f"no room table ({room.TABLE}) on the server in DATABASE_URL"
    asyncio.run(room.setup(server))  # as the other tests found it


def test_the_room_command_says_what_it_needs(monkeypatch, capsys) -> None:
    from course.tools import cli

    for name in ("ROOM_DATABASE_URL", "DATABASE_URL", "COURSE_ROOM"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["room"]) == 2
    assert "neither ROOM_DATABASE_URL nor DATABASE_URL is set" in capsys.readouterr().err
    monkeypatch.setenv("ROOM_DATABASE_URL", f"postgresql://viewer:s3cret@127.0.0.1:{_free_port()}/postgres")
    assert cli.main(["room"]) == 2
    assert "COURSE_ROOM is not set" in capsys.readouterr().err
    assert cli.main(["room", "--room", "tuesday", "--port", str(_free_port())]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("⚠️ The room view could not use its server: ConnectionRefusedError")
    assert "s3cret" not in out.out + out.err and "http://127.0.0.1:" in out.out
