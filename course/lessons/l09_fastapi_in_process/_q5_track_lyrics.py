"""q5: a blocking client inside an async route."""

from __future__ import annotations

import asyncio
import random
import threading

from course.checking.checks import Exercise, LearnerError, Wrong

from ._common import _database, _leaks, _mountable, _send, _served, _status


class _LyricsProbe:
    """Stands in for the workbook's fetch_lyrics: records the thread of every call, and in the
    concurrent phase holds each call until a second one runs beside it (or 5 s pass)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.calls: list[str] = []
        self.on_loop = 0
        self.now = 0
        self.peak = 0
        self.wait = False
        self.stalled = False
        self._cond = threading.Condition()

    def __call__(self, name: str) -> str:
        with self._cond:
            self.calls.append(name)
            if threading.get_ident() == self.loop_thread:
                self.on_loop += 1  # the loop thread is stuck here: answer at once, the call is seen
                return f"lyrics of {name}"
            self.now += 1
            self.peak = max(self.peak, self.now)
            self._cond.notify_all()
            if self.wait and not self.stalled and not self._cond.wait_for(lambda: self.peak >= 2, 5.0):
                self.stalled = True  # wait once only: a blocked loop is then seen without delay
            self.now -= 1
        return f"lyrics of {name}"


def _blocked_loop(error: BaseException | None = None) -> Wrong:
    passed_a_value = ""
    if isinstance(error, TypeError) and "callable" in str(error):
        passed_a_value = (f" Then your route raised TypeError ({str(error).splitlines()[0]}): "
                          "`to_thread(fetch_lyrics(name))` calls fetch_lyrics right away, on the "
                          "loop, and hands to_thread its result instead of the function.")
    return Wrong("fetch_lyrics ran on the event loop's own thread: while it waits, every other "
                 f"request of the app waits too.{passed_a_value} Run it in a worker thread, "
                 "passing the function and its argument separately: "
                 "`lyrics = await asyncio.to_thread(fetch_lyrics, track.name)`.")


async def _check_track_lyrics(track_lyrics) -> str:
    await _mountable(track_lyrics, "track_lyrics")
    namespace = getattr(track_lyrics, "__globals__", None)
    if namespace is None:
        raise Wrong("pass your route function `track_lyrics` itself.")
    probe = _LyricsProbe(threading.get_ident())
    missing = object()
    original = namespace.get("fetch_lyrics", missing)
    namespace["fetch_lyrics"] = probe
    url = await _database("check-09-q5")
    try:
        async with _served(url, [("/tracks/{track_id}/lyrics", "GET", track_lyrics, None)]) as (client, engine):
            from course.models import Track

            async with engine.connect() as conn:
                from sqlalchemy import select
                names = dict((await conn.execute(select(Track.track_id, Track.name))).all())

            def expected(track_id: int) -> dict:
                return {"track_id": track_id, "name": names[track_id],
                        "lyrics": f"lyrics of {names[track_id]}"}

            try:
                response = await _send(client, "GET", "/tracks/1/lyrics")
            except LearnerError as exc:
                if probe.on_loop:
                    raise _blocked_loop(exc.__cause__) from None
                raise
            if probe.on_loop:
                raise _blocked_loop()
            _status(response, 200, "GET /tracks/1/lyrics")
            if not probe.calls:
                raise Wrong("GET /tracks/1/lyrics never called fetch_lyrics: the lyrics must come "
                            "from it (the check stands in for it, to watch which thread calls it).")
            if response.json() != expected(1):
                raise Wrong(f"GET /tracks/1/lyrics returned {response.json()}; expected "
                            f"{expected(1)}, with the lyrics fetch_lyrics returned.")
            before = len(probe.calls)
            response = await _send(client, "GET", "/tracks/999999/lyrics")
            _status(response, 404, "GET /tracks/999999/lyrics", "there is no such track: raise "
                    "HTTPException(status_code=404) before calling fetch_lyrics.")
            if len(probe.calls) != before:
                raise Wrong("GET /tracks/999999/lyrics called fetch_lyrics for a track that does "
                            "not exist: answer 404 first.")
            ids = random.Random(5).sample(sorted(names), 3)
            probe.wait = True
            responses = await asyncio.gather(*(_send(client, "GET", f"/tracks/{i}/lyrics") for i in ids))
            if probe.on_loop:
                raise _blocked_loop()
            for track_id, response in zip(ids, responses, strict=True):
                _status(response, 200, f"GET /tracks/{track_id}/lyrics")
                if response.json() != expected(track_id):
                    raise Wrong(f"GET /tracks/{track_id}/lyrics returned {response.json()}; "
                                f"expected {expected(track_id)}.")
            if probe.peak < 2:
                raise Wrong(f"{len(ids)} requests at once never had two fetch_lyrics calls "
                            "running together: something made them wait their turn (likely a "
                            "lock, an executor with one thread, `ThreadPoolExecutor(max_workers="
                            "1)`, or `.result()` on a future, which blocks the loop). Await "
                            "`asyncio.to_thread(fetch_lyrics, name)` and nothing else.")
            _leaks(engine, "the requests")
    finally:
        if original is missing:
            namespace.pop("fetch_lyrics", None)
        else:
            namespace["fetch_lyrics"] = original
    return (f"fetch_lyrics ran in worker threads, never on the loop's thread; {len(ids)} requests "
            "at once overlapped; 404 without calling it for a missing track.")


q5 = Exercise(
    "q5", "track_lyrics", _check_track_lyrics,
    hints=["fetch_lyrics blocks: called directly in an `async def` route, it holds the event "
           "loop, and with it every other request. It has to run on another thread while the "
           "route awaits it.",
           "Read the track first (404 if there is none, before calling the vendor); then hand "
           "fetch_lyrics to `asyncio.to_thread`, giving it the function and its argument "
           "separately: do not call it yourself.",
           "`track = await session.get(Track, track_id)`; `if track is None: raise "
           "HTTPException(status_code=404, detail=...)`; `lyrics = await "
           "asyncio.to_thread(fetch_lyrics, track.name)`; `return Lyrics(track_id=track.track_id, "
           "name=track.name, lyrics=lyrics)`."],
    limit=20.0,
    title="A blocking client inside an async route",
)
