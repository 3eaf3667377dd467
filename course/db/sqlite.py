"""Fresh SQLite copies of Chinook, one per notebook or check, under .course/sqlite/."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

from course.db import chinook
from course.paths import state_dir


def _folder() -> Path:
    path = state_dir() / "sqlite"
    path.mkdir(parents=True, exist_ok=True)
    return path


def template() -> Path:
    """The read-only master copy, built once from datasets/ for each version of the data."""
    version = chinook.verify_files()
    path = _folder() / f"chinook-template-{version}.db"
    if path.exists():
        return path
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for statement in chinook.ddl("sqlite"):
            conn.execute(statement)
        for table, columns in chinook.TABLES.items():
            marks = ", ".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", chinook.rows(table, typed=False))  # noqa: S608 -- table names come from the course's schema
    conn.close()
    os.replace(partial, path)  # atomic: a kernel never sees a half-built template
    return path


def _safe(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return cleaned or "scratch"


def _drop_orphans(folder: Path) -> None:
    """Delete copies made by processes that have exited."""
    import psutil

    for path in folder.glob("*-p*.db*"):
        match = re.search(r"-p(\d+)\.db", path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            path.unlink(missing_ok=True)


def fresh_sqlite(name: str = "scratch") -> Path:
    """Copy Chinook to .course/sqlite/<name>-p<pid>.db, replacing any older copy; return its path.

    The process id keeps two kernels (or test workers) running the same notebook apart.
    """
    folder = _folder()
    _drop_orphans(folder)
    target = folder / f"{_safe(name)}-p{os.getpid()}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template(), target)
    return target
