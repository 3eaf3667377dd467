"""q5: reading relationships with awaitable_attrs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload

from course.checking.checks import Exercise, LearnerError, NeverAwaited, Wrong
from course.models import Track

from ._common import LIMIT, Recorder, on_both, run

TRACK_CASES = [1, 900140, 900141, 63, 900130]
Q5_FIX = "`album = await track.awaitable_attrs.album` (and the same for genre)."


async def _expected_labels(engine: AsyncEngine, track_id: int) -> tuple:
    async with AsyncSession(engine) as session:
        track = await session.get(Track, track_id, options=[selectinload(Track.album), selectinload(Track.genre)])
        assert track is not None  # the check's own track ids
        return (track.name, track.album.title if track.album else None,
                track.genre.name if track.genre else None)


async def _check_track_labels(track_labels) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for track_id in TRACK_CASES:
            expected = await _expected_labels(engine, track_id)
            for preloaded in (False, True):
                options = [selectinload(Track.album), selectinload(Track.genre)] if preloaded else []
                what = f"track_labels(<Track {track_id}>)"
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    track = await session.get(Track, track_id, options=options)
                    with Recorder(engine) as seen:
                        try:
                            got = await run(track_labels, track, what=what, fix=f"read it with {Q5_FIX}")
                        except NeverAwaited as exc:
                            if exc.name != "greenlet_spawn":
                                raise
                            raise Wrong(f"{what}: a coroutine your code made was never awaited: "
                                        "SQLAlchemy's greenlet_spawn, which is what "
                                        "`track.awaitable_attrs.<relationship>` returns. Without "
                                        "`await` you hold that coroutine, not the related "
                                        f"object: {Q5_FIX}") from None
                        except LearnerError as exc:
                            if "NoneType" in str(exc):
                                raise Wrong(f"{what}: this track has no album or no genre "
                                            "(None), and your code read its title or name "
                                            "anyway. Return None in its place.") from None
                            raise
                if seen.peak > 1:
                    raise Wrong(f"{what} had {seen.peak} queries running at once on the track's one "
                                "session (two awaitable_attrs loads gathered, say). A session runs "
                                "one statement at a time: shared between concurrent loads, it fails "
                                "(\"concurrent operations are not permitted\") or, as here, queues "
                                "them by luck, the shared-session mistake of lesson 07. Await the "
                                f"loads one after the other: {Q5_FIX}")
                if not isinstance(got, tuple) or len(got) != 3:
                    raise Wrong(f"{what} should return a tuple (track name, album title, genre "
                                f"name); yours is {got!r}.")
                if preloaded and seen.count:
                    raise Wrong(f"{what} ran {seen.count} statement(s) for a track whose album and "
                                "genre were already loaded. awaitable_attrs returns what is "
                                "loaded without SQL; a query of your own always goes to the "
                                f"database. Use {Q5_FIX}")
                if got == expected:
                    continue
                if got[1] is None and expected[1] is not None or got[2] is None and expected[2] is not None:
                    raise Wrong(f"{what} returned None for a relationship the track has: {got!r}, "
                                f"expected {expected!r}. Was an error caught and hidden?")
                if any(g == "" and e is None for g, e in zip(got[1:], expected[1:], strict=True)):
                    raise Wrong(f"{what} returned {got!r}; expected {expected!r}. A track with no "
                                "album (or no genre) gives None in that place, not an empty "
                                "string: `album.title if album else None`.")
                raise Wrong(f"{what} returned {got!r}; expected {expected!r}. Read the names from "
                            "the related objects: `(await track.awaitable_attrs.album).title`.")
        return ("5 tracks, with and without album or genre, loaded and not, read with no SQL when "
                "already loaded, on SQLite and PostgreSQL.")

    return await on_both("q5", body)


q5 = Exercise(
    "q5", "track_labels", _check_track_labels, limit=LIMIT,
    hints=["Reading `track.album` would be a lazy load, which fails in async code. The lesson "
           "shows how an ORM object lets you await one of its relationships instead: SQL only "
           "when the relationship is not loaded yet.",
           "`await track.awaitable_attrs.album` gives the album, loading it only if it must. A "
           "track may have no album or no genre: the attribute is then None, and so is the name "
           "you return.",
           "`album = await track.awaitable_attrs.album`, `genre = await track.awaitable_attrs.genre`, "
           "then `return (track.name, album.title if album else None, genre.name if genre else None)`."],
    title="Reading relationships with awaitable_attrs",
)
