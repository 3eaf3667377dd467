"""Sync sqlite3 connections opened on the event loop's thread by a learner's code (lessons 06, 07).

sqlite3.connect() raises an audit event in the thread that calls it. aiosqlite connects in its
own worker thread, so only a sync engine (or sqlite3 itself) used inside async code is counted.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_watches: dict[int, list[SyncConnects]] = {}  # thread id -> the watches open on that thread
_installed = False


def _audit(event_name: str, args: tuple[Any, ...]) -> None:
    """Count a sqlite3.connect() for every watch open on the calling thread."""
    if event_name == "sqlite3.connect":
        for watch in _watches.get(threading.get_ident(), ()):
            watch.seen += 1


class SyncConnects:
    """How many sqlite3 connections were opened on this thread while the block ran (`seen`)."""

    def __init__(self) -> None:
        self.seen = 0
        self._thread = threading.get_ident()

    def __enter__(self) -> SyncConnects:
        global _installed
        if not _installed:
            sys.addaudithook(_audit)  # audit hooks cannot be removed: it only counts, while watched
            _installed = True
        self._thread = threading.get_ident()
        _watches.setdefault(self._thread, []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watches[self._thread].remove(self)
