"""The room view in a real Chromium: a verdict recorded after the page opened appears on it
without a reload. Saves .course/screenshots/room.png (INSTRUCTORS.md, "The room view").

    .venv/bin/python tests/browser/room.py

The course's embedded PostgreSQL plays the workshop's server; the demo room's rows are deleted
at the end. Needs Playwright (`make test-browser` installs it) and the system's Chromium.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import threading
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from course.checking import room  # noqa: E402
from course.db import postgres  # noqa: E402
from course.paths import state_dir  # noqa: E402
from course.tools.room_view import create_app, serve  # noqa: E402

# A small room: a wrong answer seen by several learners, one learner stuck on q2.
DEMO = [("ada", "00.q1", "wrong", "mmss(5000) returned '0:5'; expected '0:05'. Pad the seconds to two digits, e.g. f'{s:02d}'."),
        ("ada", "00.q1", "correct", ""),
        ("ada", "00.q2", "correct", ""),
        ("bob", "00.q1", "wrong", "mmss(5000) returned '0:5'; expected '0:05'. Pad the seconds to two digits, e.g. f'{s:02d}'."),
        ("bob", "00.q1", "correct", ""),
        ("bob", "00.q2", "wrong", "did you forget `await`? Your code got a coroutine object where it needed a result: put `await` in front of the async call."),
        ("chen", "00.q1", "wrong", "mmss(343719) returned '5:44'; expected '5:43'. Drop the partial second instead of rounding it (use //)."),
        ("chen", "00.q1", "not attempted", "replace `raise NotImplementedError` in mmss with your code.")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(name: str, rows: list[tuple[str, str, str, str]], dsn: str) -> None:
    recorders: dict[str, room.Recorder] = {}
    for learner, exercise, status, message in rows:
        recorders.setdefault(learner, room.Recorder(name, learner, dsn)).record(exercise, status, message)
    for recorder in recorders.values():
        recorder.close()
        if recorder.problem:
            raise SystemExit(f"could not record the demo room: {recorder.problem}")


def main() -> int:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        print("no Chromium found: `make test-browser` installs it (apt-get install chromium)")
        return 1
    dsn = postgres.start_local()
    asyncio.run(room.setup(dsn))
    name, port = f"demo-{uuid.uuid4().hex[:6]}", _free_port()
    _record(name, DEMO, dsn)

    loop = asyncio.new_event_loop()
    started = asyncio.Event()
    server: asyncio.Task[None] | None = None  # made in the server's thread, on its loop
    stop = threading.Event()

    def run_server() -> None:
        nonlocal server
        asyncio.set_event_loop(loop)
        server = loop.create_task(serve(create_app(dsn, name), "127.0.0.1", port, started))
        loop.run_until_complete(asyncio.wait({server}))
        stop.set()

    thread = threading.Thread(target=run_server, daemon=True)
    thread.start()
    try:
        while not started.is_set():
            if stop.wait(0.1):
                raise SystemExit("the room view did not start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#live:has-text('live')", timeout=60_000)
            page.wait_for_selector("#grid th:has-text('chen')", timeout=60_000)
            page.evaluate("window.notReloaded = true")
            _record(name, [("dana", "00.q1", "correct", "")], dsn)  # after the page opened
            page.wait_for_selector("#grid th:has-text('dana')", timeout=30_000)
            assert page.evaluate("window.notReloaded === true"), "the page reloaded"
            shots = state_dir() / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "room.png"), full_page=True)
            browser.close()
        print(f"✅ room view: a new verdict appeared without a reload; screenshot in {shots / 'room.png'}")
        return 0
    finally:
        loop.call_soon_threadsafe(lambda: server is not None and server.cancel())
        thread.join(30)

        async def forget() -> None:
            import asyncpg

            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f"DELETE FROM {room.TABLE} WHERE room = $1", name)  # noqa: S608
            finally:
                await conn.close()

        asyncio.run(forget())


if __name__ == "__main__":
    raise SystemExit(main())
