"""A learner's query result read as rows, for the checks of lessons 03, 04 and 06."""

from __future__ import annotations

from typing import Any

from course.checking.checks import Wrong


def rows_of(got: Any, what: str, returns: str, width: int | None = None) -> list[tuple[Any, ...]]:
    """The learner's rows as plain tuples (a dict row by its values), or a Wrong that says what
    came back instead; `returns` names the call whose result is wanted, `width` the number of
    columns each row must have."""
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows (what {returns} returns), "
                    f"not {type(got).__name__}.")
    try:
        rows = [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows; one item is "
                    f"{type(got[0]).__name__ if got else 'missing'}.") from None
    if width is not None and any(len(row) != width for row in rows):
        raise Wrong(f"{what}: each row should have {width} columns.")
    return rows
