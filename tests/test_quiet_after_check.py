"""A wrong answer that drops a connection unclosed is reported by its check, and nothing about
it prints afterwards (SQLAlchemy's "garbage collector is trying to clean up non-checked-in
connection", aiosqlite's "Event loop is closed", a "never awaited" warning), under a later cell."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import warnings

from course.lessons import l09_fastapi_in_process as l09
from tests.corpus import l09_fastapi_in_process as corpus


def test_a_dropped_session_is_reported_and_nothing_prints_later() -> None:
    loop = asyncio.new_event_loop()  # stays open after the check, as a notebook's loop does
    try:
        outcome = loop.run_until_complete(l09.q2.evaluate(corpus.read_album_own_session.answer))
        assert outcome.status == "wrong", outcome.line
        assert "dropped without being closed" in outcome.message, outcome.line
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=ResourceWarning)  # hidden by default
            for _ in range(3):  # later cells: the loop turns, the garbage collector runs
                loop.run_until_complete(asyncio.sleep(0.2))
                gc.collect()
            loop.close()
            gc.collect()
        assert stderr.getvalue() == ""
        assert [str(w.message) for w in caught] == []
    finally:
        if not loop.is_closed():
            loop.close()
