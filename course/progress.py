"""Each check's latest outcome, kept in .course/progress.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from course.paths import state_dir


def path() -> Path:
    return Path(os.environ.get("COURSE_PROGRESS") or state_dir() / "progress.json")


def load() -> dict[str, dict[str, str]]:
    """{"00.q1": {"status": "correct", "at": "..."}}; an unreadable file counts as empty."""
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _outside_workbooks() -> bool:
    # Jupyter tells the kernel its notebook. A demonstration in a lesson, or the solutions, is
    # not the learner's progress.
    notebook = os.environ.get("JPY_SESSION_NAME", "").replace("\\", "/")
    return "/solutions/" in notebook or "/notebooks/" in notebook


def record(lesson: str, exercise: str, status: str) -> None:
    """Remember an outcome. The file is replaced atomically, so a crash never corrupts it."""
    if _outside_workbooks():
        return
    data = load()
    data[f"{lesson}.{exercise}"] = {"status": status, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    target = path()
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, target)
