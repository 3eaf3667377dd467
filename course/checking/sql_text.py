"""What the learner's SQL text gives away, as lessons 03 and 04 read it."""

from __future__ import annotations

import re


def number_in(sql: str, n: int) -> bool:
    """Whether the number n stands in the SQL text as a literal (not inside a word, a decimal,
    or a `$1`-style placeholder): the value was pasted in rather than bound."""
    return re.search(rf"(?<![\w.$]){n}(?![\w.])", sql) is not None
