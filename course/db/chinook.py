"""The Chinook data set: its schema, its checksums and typed rows read from the CSV files."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from course.errors import CourseError
from course.paths import CHINOOK_CSV, ROOT


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "text", "money" or "timestamp"
    nullable: bool = True
    references: str | None = None  # "table(column)"


def _c(name: str, kind: str = "text", *, null: bool = True, ref: str | None = None) -> Column:
    return Column(name, kind, null, ref)


# Tables in an order that satisfies the foreign keys. Keys follow datasets/chinook/README.md.
TABLES: dict[str, list[Column]] = {
    "genre": [_c("genre_id", "int", null=False), _c("name")],
    "media_type": [_c("media_type_id", "int", null=False), _c("name")],
    "artist": [_c("artist_id", "int", null=False), _c("name")],
    "album": [
        _c("album_id", "int", null=False),
        _c("title", null=False),
        _c("artist_id", "int", null=False, ref="artist(artist_id)"),
    ],
    "track": [
        _c("track_id", "int", null=False),
        _c("name", null=False),
        _c("album_id", "int", ref="album(album_id)"),
        _c("media_type_id", "int", null=False, ref="media_type(media_type_id)"),
        _c("genre_id", "int", ref="genre(genre_id)"),
        _c("composer"),
        _c("milliseconds", "int", null=False),
        _c("bytes", "int"),
        _c("unit_price", "money", null=False),
    ],
    "employee": [
        _c("employee_id", "int", null=False),
        _c("last_name", null=False),
        _c("first_name", null=False),
        _c("title"),
        _c("reports_to", "int", ref="employee(employee_id)"),
        _c("birth_date", "timestamp"),
        _c("hire_date", "timestamp"),
        *(_c(n) for n in ("address", "city", "state", "country", "postal_code", "phone", "fax", "email")),
    ],
    "customer": [
        _c("customer_id", "int", null=False),
        _c("first_name", null=False),
        _c("last_name", null=False),
        *(_c(n) for n in ("company", "address", "city", "state", "country", "postal_code", "phone", "fax")),
        _c("email", null=False),
        _c("support_rep_id", "int", ref="employee(employee_id)"),
    ],
    "invoice": [
        _c("invoice_id", "int", null=False),
        _c("customer_id", "int", null=False, ref="customer(customer_id)"),
        _c("invoice_date", "timestamp", null=False),
        *(_c(f"billing_{n}") for n in ("address", "city", "state", "country", "postal_code")),
        _c("total", "money", null=False),
    ],
    "invoice_line": [
        _c("invoice_line_id", "int", null=False),
        _c("invoice_id", "int", null=False, ref="invoice(invoice_id)"),
        _c("track_id", "int", null=False, ref="track(track_id)"),
        _c("unit_price", "money", null=False),
        _c("quantity", "int", null=False),
    ],
    "playlist": [_c("playlist_id", "int", null=False), _c("name")],
    "playlist_track": [
        _c("playlist_id", "int", null=False, ref="playlist(playlist_id)"),
        _c("track_id", "int", null=False, ref="track(track_id)"),
    ],
}

PRIMARY_KEYS = {table: ("playlist_id", "track_id") if table == "playlist_track" else (cols[0].name,)
                for table, cols in TABLES.items()}

SQL_TYPES = {
    "sqlite": {"int": "INTEGER", "text": "TEXT", "money": "NUMERIC(10, 2)", "timestamp": "TEXT"},
    "postgresql": {"int": "integer", "text": "text", "money": "numeric(10, 2)", "timestamp": "timestamp"},
}


def ddl(dialect: str) -> list[str]:
    """CREATE TABLE statements for the whole schema, in dependency order."""
    types = SQL_TYPES[dialect]
    statements = []
    for table, columns in TABLES.items():
        lines = []
        for col in columns:
            line = f"{col.name} {types[col.kind]}" + ("" if col.nullable else " NOT NULL")
            if col.references:
                line += f" REFERENCES {col.references}"
            lines.append(line)
        lines.append(f"PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])})")
        statements.append(f"CREATE TABLE {table} (\n    " + ",\n    ".join(lines) + "\n)")
    # Indexes on the foreign keys that lessons join on.
    for table, columns in TABLES.items():
        for col in columns:
            if col.references and table != "playlist_track":
                statements.append(f"CREATE INDEX ix_{table}_{col.name} ON {table} ({col.name})")
    return statements


def _checksums_file() -> Path:
    return CHINOOK_CSV / "SHA256SUMS"


def verify_files() -> str:
    """Check every CSV against SHA256SUMS; return a short digest naming this version of the data."""
    sums = _checksums_file()
    if not sums.exists():
        raise CourseError(
            f"The data set's checksum list {sums.relative_to(ROOT)} is missing.",
            "restore the data folder: `git checkout -- datasets/` (or download the course again).",
        )
    overall = hashlib.sha256()
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        try:
            expected, name = line.split()
        except ValueError:
            raise CourseError(
                f"The data set's checksum list {sums.relative_to(ROOT)} has been changed.",
                "restore the data folder: `git checkout -- datasets/` (or download the course again).",
            ) from None
        path = CHINOOK_CSV / name
        if not path.exists():
            raise CourseError(
                f"The data file datasets/chinook/{name} is missing.",
                "restore it with `git checkout -- datasets/` (or download the course again).",
            )
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise CourseError(
                f"The data file datasets/chinook/{name} has been changed; the course needs the original.",
                "restore it with `git checkout -- datasets/`. Write your own data into a database, "
                "never into datasets/.",
            )
        overall.update(expected.encode())
    overall.update("\n".join(ddl("postgresql")).encode())
    return overall.hexdigest()[:10]


def _convert(kind: str, raw: str) -> object:
    if raw == "":
        return None
    if kind == "int":
        return int(raw)
    if kind == "money":
        return Decimal(raw)
    if kind == "timestamp":
        return datetime.fromisoformat(raw)
    return raw


def rows(table: str, *, typed: bool = True) -> Iterator[tuple[Any, ...]]:
    """The rows of one table. typed=True gives int/Decimal/datetime; False gives SQLite-ready values."""
    columns = TABLES[table]
    with open(CHINOOK_CSV / f"{table}.csv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != [c.name for c in columns]:
            raise CourseError(
                f"datasets/chinook/{table}.csv has unexpected columns.",
                "restore it with `git checkout -- datasets/`.",
            )
        for record in reader:
            values = tuple(_convert(c.kind, v) for c, v in zip(columns, record, strict=True))
            if not typed:
                values = tuple(
                    str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v
                    for v in values
                )
            yield values
