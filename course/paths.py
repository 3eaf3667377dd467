"""Where the course keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
CHINOOK_CSV = DATASETS / "chinook"
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = ROOT / "exercises"
SOLUTIONS = ROOT / "solutions"


def state_dir() -> Path:
    """The git-ignored folder for databases, progress and backups (`COURSE_HOME` overrides it)."""
    path = Path(os.environ.get("COURSE_HOME") or ROOT / ".course")
    path.mkdir(parents=True, exist_ok=True)
    return path
