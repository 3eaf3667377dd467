"""Checks for exercises/08-relationships-and-loading-workbook.ipynb.

Every check runs the learner's function on a fresh Chinook copy, first on SQLite, then on
PostgreSQL, with rows the check adds itself (an artist, albums, tracks, a genre, a customer and
an invoice with quotes in their names and ids far from Chinook's). It gives the function a new
AsyncSession for every call, and counts the statements each call sends with StatementCounter.
One submodule per exercise; _common.py holds the check's rows and the running of the learner's code.
"""

from ._q1_albums import q1
from ._q2_revenue import q2
from ._q3_invoice import q3
from ._q4_keyset import q4
from ._q5_awaitable_attrs import q5

__all__ = ["q1", "q2", "q3", "q4", "q5"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
