"""Checks for exercises/11-testing-and-capstone-workbook.ipynb.

q1 and q2 drive the learner's fixtures the way pytest does (call the async generator, take what
it yields, let the test run, resume it for the teardown), then look at what is left in the
database. q3 runs the learner's pytest module in a subprocess against the lesson-09 app and
against five copies of it with a planted bug (mutation testing). q4 is the capstone: the course's
own hidden suite, through httpx.ASGITransport with the app's lifespan run by LifespanManager.
"""

from ._q1_rolled_back_session import q1
from ._q2_client_with_session import q2
from ._q3_store_tests import q3
from ._q4_capstone import q4

__all__ = ["q1", "q2", "q3", "q4"]


def __dir__() -> list[str]:
    """What tab completion offers on `ex.`: the exercises only."""
    return __all__
