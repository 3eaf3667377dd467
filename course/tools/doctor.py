"""The set-up check that lesson 00 runs: one line per part of the course's machinery."""

from __future__ import annotations

import re
import sqlite3
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from course.db import chinook
from course.errors import CourseError
from course.paths import ROOT


def pins(optional: bool = False) -> dict[str, str]:
    """{"asyncpg": "0.32.0", ...} from pyproject.toml; with `optional`, the test extras too."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    specs = list(data["project"]["dependencies"])
    if optional:
        specs += data["project"].get("optional-dependencies", {}).get("test", [])  # not [authoring]
    found = {}
    for spec in specs:
        name, version = spec.split("==")
        found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def _python() -> str:
    version = sys.version_info[:2]
    if (3, 11) <= version <= (3, 13):
        return "✅ Python: a supported version (3.11 to 3.13)"
    if version == (3, 14):
        return "✅ Python 3.14: supported, though the course was tested on 3.11 to 3.13"
    return f"❌ Python {sys.version.split()[0]}: the course supports 3.11 to 3.14"


def _installer() -> str:
    """" (with uv)" or " (with pip)", from the stamp tasks.py leaves in the venv; else ""."""
    stamp = Path(sys.prefix) / ".installed"
    words = stamp.read_text().split() if stamp.exists() else []
    return f" (with {words[2]})" if words[:2] == ["installed", "with"] and len(words) > 2 else ""


def _packages() -> str:
    wrong = []
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong.append(f"{name} {installed} (wants {version})")
    if wrong:
        return "❌ packages: " + ", ".join(wrong) + ". Fix: run `make install`, which reinstalls the pins."
    return f"✅ packages: all {len(pins())} pinned versions installed{_installer()}"


def _data() -> str:
    try:
        chinook.verify_files()
    except CourseError as exc:
        return f"❌ data: {exc.problem} Fix: {exc.fix}"
    return f"✅ data: {len(chinook.TABLES)} Chinook tables, every file matches its checksum"


def _sqlite() -> str:
    from course.db.sqlite import fresh_sqlite

    try:
        path = fresh_sqlite("doctor")
        with sqlite3.connect(path) as conn:
            tracks = conn.execute("SELECT COUNT(*) FROM track").fetchone()[0]
        conn.close()
    except CourseError as exc:
        return f"❌ SQLite: {exc.problem} Fix: {exc.fix}"
    except sqlite3.Error as exc:
        return f"❌ SQLite: {type(exc).__name__}: {exc}"
    return f"✅ SQLite {sqlite3.sqlite_version_info[0]}: a fresh copy of Chinook answers ({tracks} tracks)"


async def _postgres() -> str:
    import asyncpg

    from course.db.postgres import drop_postgres, fresh_postgres

    try:
        db = await fresh_postgres("doctor")
        conn = await asyncpg.connect(db.dsn)
        try:
            tracks = await conn.fetchval("SELECT COUNT(*) FROM track")
        finally:
            await conn.close()
        await drop_postgres(db)
    except CourseError as exc:
        return f"❌ PostgreSQL: {exc.problem} Fix: {exc.fix}"
    return f"✅ PostgreSQL on {db.where}: a fresh clone of Chinook answers ({tracks} tracks)"


async def report() -> None:
    """Print the set-up check, one line per part."""
    data = _data()
    print(_python(), _packages(), data, sep="\n")
    if data.startswith("❌"):  # both databases are built from the data: one message is enough
        print("⏭️ SQLite and PostgreSQL: not tried until the data is restored")
        return
    print(_sqlite(), await _postgres(), sep="\n")
