"""Checks for exercises/09-fastapi-in-process-workbook.ipynb.

Every check drives the learner's code the way a client would: it builds a FastAPI app around the
learner's route (or calls the learner's create_app), runs its lifespan with LifespanManager, and
sends real HTTP requests through httpx.ASGITransport, in-process, to a fresh Chinook database.
"""

from ._q1_create_app import q1
from ._q2_read_album import q2
from ._q3_create_artist import q3
from ._q4_list_tracks import q4
from ._q5_track_lyrics import q5

__all__ = ["q1", "q2", "q3", "q4", "q5"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
