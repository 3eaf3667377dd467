"""Checks for exercises/07-orm-sessions-workbook.ipynb.

Every check makes its own fresh Chinook database (SQLite, then PostgreSQL, unless the exercise
names one), its own engine and sessions, and hands them to the learner's function. Database
creation happens before the learner's code runs; `limit=` leaves room for PostgreSQL's start-up.
One submodule per exercise; _common.py holds what they share (running the learner's code, and
a watch over the sessions it opens).
"""

from ._q1_track_or_none import q1
from ._q2_invoice import q2
from ._q3_add_to_total import q3
from ._q4_track_names import q4
from ._q5_upsert import q5

__all__ = ["q1", "q2", "q3", "q4", "q5"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
