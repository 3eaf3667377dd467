"""A rejected answer's verdict, without the error behind it (lessons 06 and 07)."""

from __future__ import annotations

import gc
import warnings

from course.checking.checks import Wrong


def quiet_wrong(exc: Wrong) -> Wrong:
    """The same verdict, without the error behind it: a forgotten await leaves its coroutine
    there (AttributeError keeps the object it was read on), and it is let go here, quietly,
    not under some later cell."""
    message = str(exc)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
        exc.__cause__ = exc.__context__ = None
        gc.collect(1)
    return Wrong(message)
