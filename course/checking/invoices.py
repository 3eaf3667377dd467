"""The invoice exercises' test data and shared judges (lessons 03, aiosqlite, and 04, asyncpg)."""

from __future__ import annotations

import random

from course.checking.checks import Wrong

GOOD_LINES = [(1, 2), (2819, 1), (3, 1)]  # 0.99 × 2 + 1.99 + 0.99 = 4.96
FAILING_LINES = [(5, 1), (13, 1), (6, 1)]  # the check's trigger refuses track 13
MISSING_LINES = [(7, 1), (999_999, 1)]
COSTLY_LINES = [(1, 2), (3, 200)]  # 0.99 × 202 = 199.98: refused when the total is set
PAUSED_TRACK = 15  # its row makes the database wait, so that the check can cancel midway
# Each failing call, and why it must fail.
FAILURES = ((FAILING_LINES, "the database refused its second line (track 13)"),
            (MISSING_LINES, "its second line names track 999999, which does not exist"),
            (COSTLY_LINES, "the database refused its total, the last step (over 100)"))


def one_invoice_added(before: tuple[int, ...], after: tuple[int, ...]) -> None:
    """Raise Wrong unless the first call added one invoice and its three lines."""
    if after != (before[0] + 1, before[1] + 3):
        raise Wrong(f"one invoice should add 1 invoice and 3 lines; yours added "
                    f"{after[0] - before[0]} and {after[1] - before[1]}.")


def one_line_per_pair(count: int, lines: list[tuple[int, int]], what: str) -> None:
    """Raise Wrong if the repeated track of `lines` was saved as one line (a dict keyed by track)."""
    if count == len({t for t, _ in lines}) < len(lines):
        raise Wrong(f"{what} saved {count} lines for {len(lines)} pairs: track {lines[0][0]} comes "
                    "twice, and each pair is a line of its own. Insert one invoice_line per "
                    "pair, as given (no dict keyed by track).")


def random_lines(track_ids: list[int]) -> list[tuple[int, int]]:
    """Two to four of these tracks, each with a quantity of 1 to 3, and the first of them once
    more: a track may come twice, each pair its own line."""
    lines = [(t, random.randint(1, 3)) for t in track_ids[:random.randint(2, 4)]]
    return [*lines, (lines[0][0], random.randint(1, 3))]
