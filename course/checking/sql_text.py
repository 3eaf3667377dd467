"""What the learner's SQL text gives away, and the rows it returned, as lessons 03 and 04 read them."""

from __future__ import annotations

import re
from typing import Any

from course.checking.checks import Wrong


def number_in(sql: str, n: int) -> bool:
    """Whether the number n stands in the SQL text as a literal (not inside a word, a decimal,
    or a `$1`-style placeholder): the value was pasted in rather than bound."""
    return re.search(rf"(?<![\w.$]){n}(?![\w.])", sql) is not None


def as_rows(got: Any, what: str, returns: str) -> list[tuple]:
    """The learner's rows as plain tuples (a dict row by its values), or a Wrong that says what
    came back instead; `returns` names the call whose result is wanted."""
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of rows (what {returns} returns), "
                    f"not {type(got).__name__}.")
    try:
        return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in got]
    except TypeError:
        raise Wrong(f"{what} should return a list of rows; one item is "
                    f"{type(got[0]).__name__ if got else 'missing'}.") from None
