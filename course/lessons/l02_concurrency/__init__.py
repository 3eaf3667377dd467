"""Checks for exercises/02-concurrency-workbook.ipynb.

No database: each check passes the learner a pretend query (`fetch_one`) that waits on the event
loop like a real one, and watches it with probes: how many calls were in flight at once
(InFlight), whether a call was cancelled, whether the loop was blocked (LoopWitness). No check
compares wall-clock times.
"""

from ._q1_fetch_all import q1
from ._q2_fetch_bounded import q2
from ._q3_with_timeout import q3
from ._q4_lookup_without_blocking import q4
from ._q5_fetch_some import q5
from ._q6_track_name import q6

__all__ = ["q1", "q2", "q3", "q4", "q5", "q6"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
