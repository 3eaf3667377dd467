"""Run by `make test` after pytest: nothing the suite started is left running, and datasets/
is exactly as committed. Exits non-zero, with the reason, otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("COURSE_HOME", ROOT / ".course" / "test"))


def leftover_postgres() -> list[str]:
    """postgres processes whose data directory is under the suite's COURSE_HOME or a temp dir it made."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and (str(HOME) in cmd or "course-test-server" in cmd):
            found.append(f"pid {proc.pid}: {cmd[:120]}")
    return found


def main() -> int:
    problems = []
    for _ in range(20):  # the last kernel may still be stopping its cluster
        left = leftover_postgres()
        if not left:
            break
        time.sleep(0.5)
    else:
        problems.append("PostgreSQL processes started by the suite are still running:\n  " + "\n  ".join(left))
    sys.path.insert(0, str(ROOT))
    from course.db.chinook import verify_files
    from course.errors import CourseError

    try:
        verify_files()
    except CourseError as exc:
        problems.append(f"datasets/ changed during the run: {exc.problem}")
    if (ROOT / ".git").exists():
        status = subprocess.run(["git", "status", "--porcelain", "--", "datasets"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
        if status:
            problems.append(f"datasets/ differs from git after the run:\n{status}")
    for problem in problems:
        print(f"after the suite: {problem}", file=sys.stderr)
    if not problems:
        print("after the suite: no PostgreSQL left running; datasets/ unchanged.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
