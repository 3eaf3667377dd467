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


WORKBOOK_SUFFIX = "-workbook"
SOLUTION_SUFFIX = "-solution"


def workbook_for(solution: Path) -> Path:
    """exercises/NN-slug-workbook.ipynb for solutions/NN-slug-solution.ipynb."""
    slug = solution.stem.removesuffix(SOLUTION_SUFFIX)
    return EXERCISES / f"{slug}{WORKBOOK_SUFFIX}.ipynb"


def solution_for(workbook: Path) -> Path:
    """solutions/NN-slug-solution.ipynb for exercises/NN-slug-workbook.ipynb."""
    slug = workbook.stem.removesuffix(WORKBOOK_SUFFIX)
    return SOLUTIONS / f"{slug}{SOLUTION_SUFFIX}.ipynb"


def state_dir() -> Path:
    """The git-ignored folder for databases, progress and backups (`COURSE_HOME` overrides it)."""
    path = Path(os.environ.get("COURSE_HOME") or ROOT / ".course")
    path.mkdir(parents=True, exist_ok=True)
    return path
