"""What the top-artists exercises of lessons 03 (aiosqlite) and 04 (asyncpg) share."""

from __future__ import annotations

from course.checking.checks import Wrong


def no_track_counted_as_one(rows: list[tuple], expected: list[tuple], what: str) -> None:
    """Artists that have no track, listed with 1: count(*) over a LEFT JOIN counted the NULL row."""
    has_tracks = {name for name, _ in expected}
    phantom = [r for r in rows if r[0] not in has_tracks and r[1] == 1]
    if phantom:
        raise Wrong(f"{what} listed {len(phantom)} artists that have no track as having 1 "
                    f"(such as {phantom[0]}). A LEFT JOIN gives such an artist one row of "
                    "NULLs, and count(*) counts that row: count the tracks themselves, "
                    "count(t.track_id), which gives 0 (or use an inner JOIN, which leaves "
                    "them out).")
