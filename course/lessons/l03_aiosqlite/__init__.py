"""Checks for exercises/03-aiosqlite-workbook.ipynb."""

from ._q1_search import q1
from ._q2_top_artists import q2
from ._q3_invoice import q3
from ._q4_playlist import q4
from ._q5_customers import q5

__all__ = ["q1", "q2", "q3", "q4", "q5"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
