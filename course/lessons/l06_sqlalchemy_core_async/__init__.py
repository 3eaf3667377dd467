"""Checks for exercises/06-sqlalchemy-core-async-workbook.ipynb.

Every exercise whose statement names no backend is checked on SQLite, then on PostgreSQL: each
check makes a fresh Chinook database for each backend before it calls the learner's code.
One submodule per exercise; _common.py holds what they share (running the learner's code).
"""

from ._q1_longest_tracks import q1
from ._q2_playlist import q2
from ._q3_export import q3
from ._q4_bulk_insert import q4
from ._q5_engine_life import q5

__all__ = ["q1", "q2", "q3", "q4", "q5"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
