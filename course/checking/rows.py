"""A learner's query result read as rows (lesson 06; lessons 03 and 04 have the same step)."""

from __future__ import annotations

from typing import Any

from course.checking.checks import Wrong


def rows_of(got: Any, what: str, width: int,
            fetch: str = "`result.all()` gives a list.") -> list[tuple[Any, ...]]:
    """The learner's rows as tuples of `width` columns, or a Wrong that says what came back."""
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows, not {type(got).__name__}: {fetch}")
    try:
        rows = [tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows (tuples); one item is "
                    f"{type(got[0]).__name__}.") from None
    if any(len(row) != width for row in rows):
        raise Wrong(f"{what}: each row should have {width} columns.")
    return rows
