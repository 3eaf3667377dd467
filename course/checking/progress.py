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
    """Whether this kernel runs a lesson or a solution, whose checks are demonstrations, not
    the learner's progress.

    Jupyter tells the kernel its notebook in JPY_SESSION_NAME, usually as an absolute path.
    Other runners (nbclient, nbval, `make verify`) do not set it; but they, like Jupyter,
    start the kernel in the notebook's own folder, so the working folder decides then. A
    relative session name may be relative to the course folder or to Jupyter's root: either
    way the kernel's folder is the notebook's, so both are asked.
    """
    session = os.environ.get("JPY_SESSION_NAME")
    folders = []
    if session:
        folders.append((ROOT / session).resolve().parent)  # ROOT / an absolute path is that path
    if not session or not Path(session).is_absolute():
        try:
            folders.append(Path.cwd().resolve())
        except OSError:  # the working folder was deleted
            pass
    lessons = (NOTEBOOKS.resolve(), SOLUTIONS.resolve())
    for folder in folders:
        if folder in lessons:
            return True
        # a copy of the course elsewhere (the browser test serves one): its lessons and solutions too
        if folder.name in (NOTEBOOKS.name, SOLUTIONS.name) and (folder.parent / "exercises").is_dir():
            return True
    return False


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
