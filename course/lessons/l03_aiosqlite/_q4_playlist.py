"""q4: a playlist with executemany."""

from __future__ import annotations

import random

from course.checking.checks import Exercise, LearnerError, Wrong
from course.checking.invoices import PAUSED_TRACK

from ._common import (
    _cancelled_midway,
    _counts,
    _database,
    _id_taken,
    _pasted_into_sql,
    _Pause,
    _rolled_back_if_open,
    _run,
)
from ._watched import _Watched

BIND_NAME = "`VALUES (?)` in the SQL, and `(name,)` in the parameters"
# Playlists deleted in the middle: the ids have gaps, so count(*) + 1 is an id already taken.
PLAYLIST_GAPS = """
    DELETE FROM playlist_track WHERE playlist_id BETWEEN 2 AND 4;
    DELETE FROM playlist WHERE playlist_id BETWEEN 2 AND 4;
"""
PLAYLIST_CASES = [("Road trip", [3, 1, 2819, 7, 1000]), ("O'Brien's \"best\"; --", [42]),
                  ("Silence", [])]


async def _check_add_playlist(add_playlist) -> str:
    async with _database("check-03-q4") as (db, observer):
        await db.executescript(PLAYLIST_GAPS)
        await db.commit()
        pause = _Pause()
        await pause.install(db, "playlist_track")
        next_id = list(await observer.execute_fetchall("SELECT max(playlist_id) FROM playlist"))[0][0] + 1
        rows = await observer.execute_fetchall(
            "SELECT track_id FROM track WHERE track_id <> ? ORDER BY random() LIMIT ?",
            (PAUSED_TRACK, random.randint(12, 30)))
        cases = [*PLAYLIST_CASES, (f"Random {random.randint(100, 999)}", [r[0] for r in rows])]
        for name, track_ids in cases:
            what = f"add_playlist(db, {name!r}, {track_ids})"
            watch = _Watched(db)
            try:
                playlist_id = await _run(add_playlist, watch, name, list(track_ids))
            except LearnerError as exc:
                if watch.pasted(name):
                    raise _pasted_into_sql(what, name, BIND_NAME) from None
                await _rolled_back_if_open(db)
                _id_taken(exc, "playlist", "playlist_id", what)
                if "'" in name:
                    raise Wrong(f"the quote in the name {name!r} broke your SQL ({exc}). Never "
                                "build SQL with f-strings: `VALUES (?)` and pass `(name,)`.") from None
                raise
            if watch.pasted(name):
                if db.in_transaction:
                    await db.rollback()
                raise _pasted_into_sql(what, name, BIND_NAME)
            if await _rolled_back_if_open(db):
                raise Wrong(f"{what} left its transaction open, so the playlist is not saved: "
                            "finish with `await db.commit()`.")
            if not isinstance(playlist_id, int) or isinstance(playlist_id, bool):
                raise Wrong("add_playlist should return the new playlist_id, an int "
                            f"(cursor.lastrowid); it returned {type(playlist_id).__name__}.")
            if playlist_id != next_id:
                raise Wrong(f"{what} returned {playlist_id}; the new playlist's id is {next_id}. "
                            "Return cursor.lastrowid from the INSERT INTO playlist.")
            stored = await observer.execute_fetchall(
                "SELECT name FROM playlist WHERE playlist_id = ?", (playlist_id,))
            if [tuple(r) for r in stored] != [(name,)]:
                raise Wrong(f"{what}: another connection sees the playlist's name as "
                            f"{[r[0] for r in stored]}, not [{name!r}]. Insert the name as a "
                            "bound parameter and commit.")
            tracks = await observer.execute_fetchall(
                "SELECT track_id FROM playlist_track WHERE playlist_id = ? ORDER BY track_id",
                (playlist_id,))
            if [r[0] for r in tracks] != sorted(track_ids):
                raise Wrong(f"{what}: playlist {playlist_id} holds tracks "
                            f"{[r[0] for r in tracks]}; expected {sorted(track_ids)}, one "
                            "(playlist_id, track_id) row per track.")
            one_by_one, many = watch.touching("playlist_track")
            if len(track_ids) > 1 and one_by_one > 1:
                raise Wrong(f"{what} ran {one_by_one} separate statements on "
                            "playlist_track, one per track, each a round trip to the "
                            "connection's thread. Send them all at once: `await "
                            "db.executemany(sql, [(playlist_id, t) for t in track_ids])`.")
            if len(track_ids) > 1 and many == 0:
                raise Wrong(f"{what} did not use executemany for the tracks: one "
                            "`await db.executemany(sql, rows)` inserts them all.")
            next_id += 1

        counts = await _counts(observer, "playlist", "playlist_track")
        try:
            got = await _run(add_playlist, _Watched(db), "Broken", [1, 2, 1])
        except LearnerError:
            pass
        else:
            raise Wrong(f"add_playlist(db, 'Broken', [1, 2, 1]) returned {got!r}, but track 1 "
                        "twice breaks the primary key of playlist_track. Let that error "
                        "propagate after rolling back.")
        if await _rolled_back_if_open(db):
            raise Wrong("when a track could not be added (track 1 twice), the transaction stayed "
                        "open with the playlist row pending in it. Roll back on error: `except "
                        "BaseException: await db.rollback(); raise`.")
        now = await _counts(observer, "playlist", "playlist_track")
        if now != counts:
            raise Wrong(f"when a track could not be added (track 1 twice), {now[0] - counts[0]} "
                        f"playlist(s) and {now[1] - counts[1]} track row(s) stayed saved. Commit "
                        "once at the end, and roll back on error.")

        # Cancelled while the database inserts the tracks, as a timeout would.
        what = f"add_playlist(db, 'Interrupted', [2, {PAUSED_TRACK}, 4])"
        await _cancelled_midway(
            db, observer, pause, what, (add_playlist, "Interrupted", [2, PAUSED_TRACK, 4]),
            ("playlist", "playlist_track"), counts, pending="with the playlist pending in it",
            kept="{} playlist(s) and {} track row(s) saved. Commit once at the end,")
    return ("one executemany per playlist, committed once; rolled back on a duplicate and when "
            "cancelled midway.")


q4 = Exercise(
    "q4", "add_playlist", _check_add_playlist,
    hints=["Two statements: one INSERT INTO playlist for the name (its id is `cursor.lastrowid`), "
           "then one executemany for every (playlist_id, track_id) pair.",
           "`await db.executemany(\"INSERT INTO playlist_track (playlist_id, track_id) VALUES "
           "(?, ?)\", [(playlist_id, t) for t in track_ids])`.",
           "Same transaction pattern as q3: `try:` … `await db.commit()` / `except BaseException: "
           "await db.rollback(); raise`."],
    title="A playlist in one executemany",
)
