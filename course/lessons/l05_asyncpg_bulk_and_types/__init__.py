"""Checks for exercises/05-asyncpg-bulk-and-types-workbook.ipynb."""

from ._q1_copy import q1
from ._q2_pool import q2
from ._q3_prepared import q3
from ._q4_notify import q4

__all__ = ["q1", "q2", "q3", "q4"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
