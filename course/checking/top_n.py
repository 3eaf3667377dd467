"""What the top-artists exercises of lessons 03 (aiosqlite) and 04 (asyncpg) share: the query,
the check's renamed artists, and the judges of a near miss."""

from __future__ import annotations

from course.checking.checks import Wrong

# Chinook numbers its artists alphabetically, so ties by name and ties by id agree: Deep Purple
# (id 58) and Lost (id 149) both have 92 tracks. The check renames one so that they disagree.
TIED_RENAME = ("Purple, Deep", 58)
# Two artists of the same name, with 24 and 20 tracks: grouped by name alone, they merge.
SAME_NAME = ("Battlestar Galactica", 158)  # was "Battlestar Galactica (Classic)"
EVERY_ARTIST = 1000  # more than Chinook's 275 artists: every artist with a track comes back


def top_artists_sql(limit: str, *, group_by: str = "ar.artist_id, ar.name",
                    then_by: str = "ar.name") -> str:
    """The reference query, with `limit` as its placeholder (`?` or `$1`); group_by and then_by
    give the plausible wrong variants (by name alone, ties by id)."""
    return f"""
    SELECT ar.name, count(*) AS tracks
    FROM track AS t
    JOIN album AS al ON al.album_id = t.album_id
    JOIN artist AS ar ON ar.artist_id = al.artist_id
    GROUP BY {group_by}
    ORDER BY tracks DESC, {then_by}
    LIMIT {limit}
"""  # noqa: S608 -- its pieces are constants of the checks


def same_name_merged(rows: list[tuple], merged: list[tuple], what: str) -> None:
    """Raise Wrong if the rows are those of a GROUP BY on the name alone (`merged`)."""
    if rows == merged:
        name, _ = SAME_NAME
        raise Wrong(f"{what}: two different artists are called {name!r} (the check named them "
                    "alike), with 24 and 20 tracks, and you counted them as one artist with 44. "
                    "GROUP BY the artist's id (with its name), not by the name alone.")


def extra_are_empty(rows: list[tuple], expected: list[tuple]) -> bool:
    """For n beyond the artists with tracks, rows after the expected ones may list artists with
    no track (a LEFT JOIN counting track ids gives them 0): accept those."""
    return (len(rows) > len(expected) and rows[:len(expected)] == expected
            and all(len(r) == 2 and r[1] == 0 for r in rows[len(expected):]))


def tie_broken_at(rows: list[tuple], expected: list[tuple], tracks_of: dict[str, int]) -> int | None:
    """The first row that differs, when every row that differs is a true artist with its true
    count, in a place that count holds (a tie broken another way); else None."""
    differ = [i for i, (mine, theirs) in enumerate(zip(rows, expected, strict=True)) if mine != theirs]
    if differ and all(tracks_of.get(rows[i][0]) == rows[i][1] == expected[i][1] for i in differ):
        return differ[0]
    return None


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
