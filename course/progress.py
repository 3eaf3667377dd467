"""Each check's latest outcome, kept in .course/progress.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from course.paths import NOTEBOOKS, ROOT, SOLUTIONS, state_dir


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
    """Whether this kernel runs a lesson or a solution, whose checks are not the learner's
    progress. Jupyter tells the kernel its notebook: an absolute path, or one relative to the
    course folder that `make lab` serves."""
    session = os.environ.get("JPY_SESSION_NAME")
    if not session:
        return False
    folder = (ROOT / session).resolve().parent  # ROOT / an absolute path is that path
    if folder in (NOTEBOOKS.resolve(), SOLUTIONS.resolve()):
        return True
    # a copy of the course elsewhere (the browser test serves one): its lessons and solutions too
    return folder.name in (NOTEBOOKS.name, SOLUTIONS.name) and (folder.parent / "exercises").is_dir()


def record(lesson: str, exercise: str, status: str) -> None:
    """Remember an outcome."""
    if _outside_workbooks():
        return
    data = load()
    data[f"{lesson}.{exercise}"] = {"status": status, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    _save(data)


def forget(lesson: str) -> None:
    """Drop every outcome of one lesson (its workbook was reset)."""
    _save({key: value for key, value in load().items() if not key.startswith(f"{lesson}.")})


def _save(data: dict[str, dict[str, str]]) -> None:
    """Replace the file atomically, so that a crash never corrupts it."""
    target = path()
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, target)
