"""Checks for exercises/01-asyncio-basics-workbook.ipynb."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from course.checking.blocking import no_sleep_on_loop
from course.checking.checks import (
    Exercise,
    LearnerError,
    NeverAwaited,
    ReturnedCoroutine,
    TooBusy,
    Wrong,
    call,
    free_frames,
    must_raise,
)
from course.probes import InFlight, LoopWitness

# A little of Chinook, copied here so that the checks need no database.
TRACKS = {
    2000: {"track_id": 2000, "name": "Breed", "album_id": 163},
    1000: {"track_id": 1000, "name": "What If I Do?", "album_id": 80},
    3000: {"track_id": 3000, "name": "God Part II", "album_id": 237},
    187: {"track_id": 187, "name": "Book Of Thel", "album_id": 19},
}
ALBUMS = {
    163: {"album_id": 163, "title": "From The Muddy Banks Of The Wishkah [Live]", "artist_id": 110},
    80: {"album_id": 80, "title": "In Your Honor [Disc 2]", "artist_id": 84},
    237: {"album_id": 237, "title": "Rattle And Hum", "artist_id": 150},
    19: {"album_id": 19, "title": "Chemical Wedding", "artist_id": 14},
}
ARTISTS = {
    110: {"artist_id": 110, "name": "Nirvana"},
    84: {"artist_id": 84, "name": "Foo Fighters"},
    150: {"artist_id": 150, "name": "U2"},
    14: {"artist_id": 14, "name": "Bruce Dickinson"},
}

RUN_IN_LOOP = ("asyncio.run() cannot start a loop here: your function runs inside a loop that is "
               "already running (the notebook's, and the check's). Inside async code, `await` the "
               "coroutine; to run script-style code, give it its own loop in a worker thread: "
               "`await asyncio.to_thread(asyncio.run, main())`.")
OTHER_LOOP = ("{fn} ran on a second event loop that your code started (asyncio.run in a thread, "
              "or a new loop). A real connection belongs to the loop that opened it, and fails "
              "elsewhere with 'attached to a different loop'. Inside async code, `await` the "
              "call on the loop you are in.")
RUN_UNTIL_COMPLETE = ("loop.run_until_complete() inside a running loop fails: the running loop "
                      "cannot be entered again ('already running'), and a new loop cannot run "
                      "while it runs ('another loop is running'). Inside async code, `await` the "
                      "coroutine instead.")


def _release(exc: BaseException) -> None:
    """Free the frames an exception keeps alive, so that a coroutine the learner created and
    dropped is finalised now, quietly, instead of warning on stderr later."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        free_frames(exc)
        gc.collect()


async def _run(fn: Any, *args: Any) -> Any:
    """call(), plus plain words for the two ways of starting a loop inside a running one."""
    try:
        return await call(fn, *args)
    except LearnerError as exc:
        cause = exc.__cause__
        _release(exc)
        if isinstance(cause, RuntimeError) and "cannot be called from a running event loop" in str(cause):
            raise Wrong(RUN_IN_LOOP) from None
        if isinstance(cause, RuntimeError) and ("already running" in str(cause)
                                                or "while another loop is running" in str(cause)):
            raise Wrong(RUN_UNTIL_COMPLETE) from None
        if isinstance(cause, RuntimeError) and "cannot reuse already awaited coroutine" in str(cause):
            raise Wrong("a coroutine can be awaited only once ('cannot reuse already awaited "
                        "coroutine'): await the call once and keep the result in a variable.") from None
        raise
    except Wrong as exc:
        _release(exc)
        raise


# --- q1: a forgotten await -----------------------------------------------------------------

async def _check_album_title(album_title) -> str:
    probe = InFlight()
    # A copy the check may change: an album whose title is empty, and a title renamed between
    # two calls for the same album (an answer must look it up again, not keep an old result).
    albums = {**ALBUMS, 77: {"album_id": 77, "title": "", "artist_id": 150}}

    @probe.track
    async def fetch_album(album_id: int) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # a real lookup waits on the database here
        album = albums.get(album_id)
        return None if album is None else dict(album)

    asked = 0
    for step, album_id in enumerate((163, 19, 77, 163)):
        if step == 3:
            albums[163] = {**albums[163], "title": "From The Muddy Banks Of The Wishkah [Remaster]"}
        before = probe.started
        got = await _run(album_title, album_id, fetch_album)
        asked += 1
        if probe.foreign_loop:
            raise Wrong(OTHER_LOOP.format(fn="fetch_album"))
        expected = albums[album_id]["title"]
        if isinstance(got, dict):
            raise Wrong(f"album_title({album_id}, fetch_album) returned the whole album dict; "
                        f"return only its title, album[\"title\"].")
        if got == albums[album_id]["artist_id"] or got == album_id:
            raise Wrong(f"album_title({album_id}, fetch_album) returned {got!r}, an id; return "
                        f"the album's \"title\" field, here {expected!r}.")
        if probe.started == before:
            when = ", called again after the album's title changed," if step == 3 else ""
            raise Wrong(f"album_title({album_id}, fetch_album){when} returned {got!r} without "
                        "calling fetch_album. Look the album up on every call (await fetch_album "
                        "each time); a result kept from an earlier call goes stale.")
        if expected == "" and got is None:
            raise Wrong(f"album_title({album_id}, fetch_album) returned None, but album {album_id} "
                        "exists and its title is the empty string ''. Return album[\"title\"] as "
                        "it is; only a missing album (fetch_album returned None) gives None. A "
                        "truthiness test (`or None`, `if not title`) is the likely cause: test "
                        "`if album is None` instead.")
        if got != expected:
            raise Wrong(f"album_title({album_id}, fetch_album) returned {got!r}; expected {expected!r}.")
        if probe.started != asked:
            raise Wrong(f"fetch_album ran {probe.started - before} times for one album: await "
                        "it once, keep the result in a variable, and read the title from that.")
    try:
        got = await _run(album_title, 9999, fetch_album)
    except LearnerError as exc:
        raise Wrong(f"album_title(9999, fetch_album) raised {exc}. There is no album 9999, so "
                    "fetch_album returns None: check for None and return None.") from None
    if got is not None:
        raise Wrong(f"album_title(9999, fetch_album) returned {got!r}; there is no album 9999 "
                    "(fetch_album returns None), so return None.")
    return ("awaited once per call, an empty title kept as '', a renamed title seen on a repeat "
            "call, and None for a missing one.")


q1 = Exercise(
    "q1", "album_title", no_sleep_on_loop(_check_album_title, "album_title"),
    hints=["`fetch_album(album_id)` only creates a coroutine; nothing runs until you await it.",
           "`album = await fetch_album(album_id)` gives the dict (or None); then read album[\"title\"].",
           "Test for a missing album before reading the title: `if album is None: return None`."],
    title="Fix a forgotten await",
)


# --- q2: lookups that depend on each other -------------------------------------------------

async def _check_track_artist(track_artist_name) -> str:
    probe = InFlight()
    log: list[tuple[str, int]] = []

    def fake(kind: str, table: dict[int, dict[str, Any]]):
        @probe.track
        async def fetch(key: int) -> dict[str, Any] | None:
            log.append((kind, key))
            await asyncio.sleep(0.001)  # a real lookup waits on the database here
            return table.get(key)

        fetch.__name__ = fetch.__qualname__ = f"fetch_{kind}"
        return fetch

    fetch_track, fetch_album, fetch_artist = fake("track", TRACKS), fake("album", ALBUMS), fake("artist", ARTISTS)
    for track_id in (2000, 3000, 187):
        log.clear()
        album_id = TRACKS[track_id]["album_id"]
        artist_id = ALBUMS[album_id]["artist_id"]
        expected = ARTISTS[artist_id]["name"]
        args = (track_id, fetch_track, fetch_album, fetch_artist)
        try:
            got = await _run(track_artist_name, *args)
        except (Wrong, LearnerError):
            _explain_log(log, track_id)  # a clearer reason, when the log shows one
            raise
        _explain_log(log, track_id)
        if probe.foreign_loop:
            raise Wrong(OTHER_LOOP.format(fn="a lookup"))
        wanted = [("track", track_id), ("album", album_id), ("artist", artist_id)]
        if log != wanted:
            raise Wrong(f"for track {track_id} your lookups were {_fmt(log)}; expected exactly "
                        f"{_fmt(wanted)}: each lookup once, in that order.")
        if isinstance(got, dict):
            raise Wrong(f"track_artist_name({track_id}, ...) returned the artist's dict; return "
                        "its \"name\", a str.")
        if got != expected:
            raise Wrong(f"track_artist_name({track_id}, ...) returned {got!r}; expected {expected!r}.")
    if probe.peak != 1:
        raise Wrong("two lookups ran at the same time, yet each needs the result of the one "
                    "before: await them one after the other.")
    return "track → album → artist, one lookup each, in order."


def _fmt(log: list[tuple[str, int]]) -> str:
    return ", ".join(f"fetch_{kind}({key})" for kind, key in log) or "none"


def _explain_log(log: list[tuple[str, int]], track_id: int) -> None:
    album_id = TRACKS[track_id]["album_id"]
    artist_id = ALBUMS[album_id]["artist_id"]
    for kind, key in log:
        if kind == "album" and key != album_id:
            raise Wrong(f"fetch_album got {key}, but track {track_id} is on album {album_id}: pass "
                        "the track's \"album_id\", read from the track fetch_track returned.")
        if kind == "artist" and key != artist_id:
            raise Wrong(f"fetch_artist got {key}, but album {album_id} is by artist {artist_id}: "
                        "pass the album's \"artist_id\", read from the album fetch_album returned.")
    counts = {kind: sum(1 for k, _ in log if k == kind) for kind in ("track", "album", "artist")}
    for kind, count in counts.items():
        if count > 1:
            raise Wrong(f"fetch_{kind} ran {count} times for one track: each lookup costs a round "
                        "trip to the database. Await it once and keep the result in a variable.")


q2 = Exercise(
    "q2", "track_artist_name", no_sleep_on_loop(_check_track_artist, "track_artist_name"),
    hints=["Each lookup needs a key that only the previous lookup gives you, so they run one "
           "after the other: three awaits in a row.",
           "`track = await fetch_track(track_id)`, then `album = await fetch_album(track[\"album_id\"])`.",
           "Finish with `artist = await fetch_artist(album[\"artist_id\"])` and return artist[\"name\"]."],
    title="Three lookups in sequence",
)


# --- q3: call a hook that may be sync or async -------------------------------------------

async def _check_call_hook(call_hook) -> str:
    calls: dict[str, int] = {}

    def count(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    for hook, args, expected, advice in _hook_cases(count):
        await _one_hook(call_hook, calls, hook, args, expected, advice)
    await _hook_errors_pass_through(call_hook, count)
    return ("plain values, coroutines, Futures and other awaitables all come back as results; "
            "the hook's own errors pass through.")


def _hook_cases(count: Callable[[str], None]) -> list[tuple[Any, tuple, Any, str]]:
    """Hooks of every kind call_hook may be given: (hook, its arguments, its result, the advice
    for an answer that gets it wrong). Each hook counts its calls with count(its name)."""
    def row_count(table: str) -> int:
        count("row_count")
        return {"track": 3503, "album": 347}[table]

    async def artist_name(artist_id: int) -> str:
        count("artist_name")
        await asyncio.sleep(0)
        return ARTISTS[artist_id]["name"]

    def cached_artist_name(artist_id: int):  # a plain function that returns a coroutine
        count("cached_artist_name")
        return artist_name(artist_id)

    def ready_future(value: str) -> asyncio.Future[str]:  # a plain function that returns a Future
        count("ready_future")
        future = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def no_arguments() -> str:
        count("no_arguments")
        return "ready"

    def empty_count(table: str) -> int:  # a falsy result is a result
        count("empty_count")
        return 0

    async def no_row(artist_id: int) -> None:  # so is None, from an async hook
        count("no_row")
        await asyncio.sleep(0)

    class Deferred:
        """An awaitable of a driver's own: neither a coroutine nor a Future."""

        def __init__(self, value: str) -> None:
            self.value = value

        def __await__(self):
            return asyncio.sleep(0, result=self.value).__await__()

    def deferred_name(artist_id: int) -> Deferred:
        count("deferred_name")
        return Deferred(ARTISTS[artist_id]["name"])

    cases = [
        (row_count, ("track",), 3503,
         "a plain function's result is a plain value: `await` works only on awaitables, so test "
         "the result with inspect.isawaitable() before awaiting it."),
        (artist_name, (150,), "U2",
         "an async hook returns a coroutine when called: await it to get the value."),
        (cached_artist_name, (84,), "Foo Fighters",
         "a plain `def` that returns a coroutine is not a coroutine function, yet its result still "
         "needs awaiting: test the result with inspect.isawaitable(), not the hook with "
         "iscoroutinefunction()."),
        (ready_future, ("Nirvana",), "Nirvana",
         "an asyncio Future (or Task) is awaitable but is not a coroutine: test the result with "
         "inspect.isawaitable(), which covers coroutines, Tasks and Futures."),
        (deferred_name, (14,), "Bruce Dickinson",
         "a library may return an awaitable of its own, neither a coroutine nor a Future: "
         "inspect.isawaitable() recognises anything you can await."),
        (no_arguments, (), "ready", "call the hook with exactly the arguments you were given."),
        (empty_count, ("playlist_track",), 0,
         "a falsy result (0, '', None) is still the result: return it as it is, and decide "
         "whether to await by inspect.isawaitable(result), not by its truthiness."),
        (no_row, (9999,), None,
         "an async hook that returns None still returns a coroutine when called: await it, "
         "and return its None."),
    ]
    return cases


async def _one_hook(call_hook: Any, calls: dict[str, int], hook: Any, args: tuple, expected: Any,
                    advice: str) -> None:
    """call_hook(hook, *args) must call the hook once and return its result, awaited if need be."""
    shown = ", ".join([hook.__name__, *map(repr, args)])
    before = calls.get(hook.__name__, 0)
    try:
        got = await _run(call_hook, hook, *args)
    except Wrong as exc:
        if "await" not in str(exc) or "asyncio.run()" in str(exc):
            raise
        if isinstance(exc, NeverAwaited) and calls.get(hook.__name__, 0) - before > 1:
            raise Wrong(f"call_hook({shown}) called the hook {calls[hook.__name__] - before} "
                        "times and dropped a coroutine: call it once, keep the result, then "
                        "decide whether to await that result.") from None
        raise Wrong(f"call_hook({shown}): {advice}") from None
    except LearnerError as exc:
        if isinstance(exc.__cause__, TypeError) and "await" in str(exc.__cause__):
            raise Wrong(f"call_hook({shown}) raised TypeError: {advice}") from None
        if isinstance(exc.__cause__, TypeError) and "argument" in str(exc.__cause__):
            raise Wrong(f"call_hook({shown}) raised TypeError: call the hook with exactly "
                        "the arguments you were given, `hook(*args)`.") from None
        raise
    ran = calls.get(hook.__name__, 0) - before
    if ran != 1:
        raise Wrong(f"call_hook({shown}) called the hook {ran} times; call it exactly once "
                    "(a hook may have side effects, such as a query).")
    if inspect.isawaitable(got):
        if inspect.iscoroutine(got):
            got.close()
        raise Wrong(f"call_hook({shown}) returned a {type(got).__name__}, not its result: "
                    f"{advice}")
    if got != expected:
        falsy = f" {advice}" if not expected else ""  # the advice for a falsy result
        raise Wrong(f"call_hook({shown}) returned {got!r}; expected {expected!r}.{falsy}")


async def _hook_errors_pass_through(call_hook: Any, count: Callable[[str], None]) -> None:
    """The async hook's own errors (a TypeError, a LookupError) must reach call_hook's caller."""

    async def failing_hook(artist_id: int) -> str:
        count("failing_hook")
        await asyncio.sleep(0)
        raise TypeError(f"unsupported operand type(s) for +: 'int' and 'str' (artist {artist_id})")

    async def missing_hook(artist_id: int) -> str:
        count("missing_hook")
        await asyncio.sleep(0)
        raise LookupError(f"no artist {artist_id}")

    async def given_instead(hook: Any, kind: type[Exception]) -> str | None:
        """None when the hook's error reached the caller; else what call_hook gave instead."""
        try:
            got = await _run(call_hook, hook, 150)
        except LearnerError as exc:
            if isinstance(exc.__cause__, kind):
                return None
            raise
        except Wrong as exc:
            if "coroutine object" not in str(exc):
                raise
            return "the spent coroutine"
        return repr(got)

    on_type_error = await given_instead(failing_hook, TypeError)
    on_lookup_error = await given_instead(missing_hook, LookupError)
    if on_type_error and on_lookup_error:
        raise Wrong(f"when the async hook itself raised an error, call_hook returned "
                    f"{on_type_error} (for a TypeError) and {on_lookup_error} (for a "
                    "LookupError) instead of letting it through: both kinds were swallowed, "
                    "so something there catches every error (likely `except Exception:` or a "
                    "bare `except:`). Catch nothing: call the hook, test the result with "
                    "inspect.isawaitable(), await it if so, and let the hook's errors reach "
                    "the caller.")
    if on_type_error:
        raise Wrong(f"when the async hook itself raised TypeError, call_hook returned "
                    f"{on_type_error} instead of letting that error through (a LookupError from "
                    "the hook did get through): catching TypeError to tell values from "
                    "awaitables also swallows the hook's own TypeErrors. Test the result with "
                    "inspect.isawaitable(), and let the hook's errors reach the caller.")
    if on_lookup_error:
        raise Wrong(f"when the async hook itself raised LookupError, call_hook returned "
                    f"{on_lookup_error} instead of letting that error through. Catch nothing "
                    "here: let the hook's errors reach the caller.")


q3 = Exercise(
    "q3", "call_hook", no_sleep_on_loop(_check_call_hook, "call_hook"),
    hints=["Call the hook once, `result = hook(*args)`, then look at what came back.",
           "inspect.isawaitable(result) is True for coroutines, Tasks and Futures: await those.",
           "`result = hook(*args)`; `if inspect.isawaitable(result): result = await result`; "
           "`return result`."],
    title="Call a hook that may be sync or async",
)


# --- q4: several steps on one loop, from synchronous code --------------------------------

STEP_RESULTS = ["pool opened", "3503 tracks counted", "pool closed"]


async def _check_run_steps(run_steps) -> str:
    if inspect.iscoroutinefunction(run_steps):
        try:
            await _run(run_steps, [])
        except (Wrong, LearnerError):
            pass
        raise Wrong("run_steps should be a plain `def`: it is the entry point of a script, called "
                    "from synchronous code where no loop runs yet. Create the loop inside it with "
                    "`with asyncio.Runner() as runner:`.")
    probe = InFlight()
    seen: list[tuple[str, asyncio.AbstractEventLoop, int]] = []

    def step(name: str, result: str):
        @probe.track
        async def run() -> str:
            seen.append((name, asyncio.get_running_loop(), threading.get_ident()))
            await asyncio.sleep(0.005)  # a real step waits on the database here
            return result

        run.__name__ = run.__qualname__ = name
        return run

    steps = [step(n, r) for n, r in zip(("open_pool", "count_tracks", "close_pool"), STEP_RESULTS, strict=True)]
    kernel_loop = asyncio.get_running_loop()
    got = await _run(asyncio.to_thread, run_steps, steps)  # a script has no running loop: a thread has none
    if isinstance(got, list) and any(inspect.iscoroutine(item) for item in got):
        for item in got:
            if inspect.iscoroutine(item):
                item.close()
        raise Wrong("run_steps returned coroutine objects: calling step() only creates one. Did "
                    "you forget `await`? In synchronous code, run each with runner.run(step()).")
    names = [name for name, _, _ in seen]
    if names != ["open_pool", "count_tracks", "close_pool"]:
        raise Wrong(f"the steps ran as {names or 'nothing'}; run each step once, in the order given.")
    if probe.peak > 1:
        raise Wrong("the steps ran at the same time; run them one after another, each to its end "
                    "before the next starts (a later step may need an earlier one's work).")
    if got != STEP_RESULTS:
        raise Wrong(f"run_steps returned {got!r}; expected the steps' results in order: {STEP_RESULTS!r}.")
    loops = {id(loop) for _, loop, _ in seen}
    if len(loops) > 1:
        raise Wrong("each step ran on a loop of its own: asyncio.run() (or a new Runner per "
                    "step) creates a new loop every time, and a pool opened on one loop cannot be "
                    "used on the next. Run every "
                    "step on one loop: `with asyncio.Runner() as runner:` and runner.run(step()) "
                    "for each.")
    loop = seen[0][1]
    if loop is kernel_loop:
        raise Wrong("the steps ran on the caller's loop; a script's entry point makes its own.")
    if not loop.is_closed():
        loop.close()
        raise Wrong("the loop is still open after run_steps returned: close it. `with "
                    "asyncio.Runner() as runner:` closes it for you, even on errors.")
    empty = await _run(asyncio.to_thread, run_steps, [])
    if empty != []:
        raise Wrong(f"run_steps([]) returned {empty!r}; with no steps, return an empty list.")
    await _failing_step_closes_the_loop(run_steps)
    return "three steps, in order, on one loop that is closed at the end, even after a failure."


class _StepFailed(RuntimeError):
    """The failure a q4 step raises on purpose."""


async def _failing_step_closes_the_loop(run_steps) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def count_tracks() -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        raise _StepFailed("the count query failed")

    await must_raise(_StepFailed, _run(asyncio.to_thread, run_steps, [count_tracks]),
                     lambda got: f"when a step raised an error, run_steps returned {got!r}: let "
                                 "the error reach the script's caller.")
    if loops and not loops[0].is_closed():
        loops[0].close()
        raise Wrong("when a step raised an error, the loop was left open: close it however the "
                    "steps end. `with asyncio.Runner() as runner:` does (or close it in a "
                    "`finally:`).")


q4 = Exercise(
    "q4", "run_steps", _check_run_steps,
    hints=["asyncio.run() makes a new loop for every call; asyncio.Runner keeps one loop for "
           "several calls.",
           "`with asyncio.Runner() as runner:` creates the loop and closes it at the end; "
           "`runner.run(coro)` runs one coroutine on it to completion.",
           "`with asyncio.Runner() as runner: return [runner.run(step()) for step in steps]`"],
    title="Several steps on one loop, with asyncio.Runner",
)


# --- q5: script-style code from a notebook ----------------------------------------------

BLOCKING_SECONDS = 0.5  # how long the old script's blocking code holds the thread it runs on


async def _check_run_script_main(run_script_main) -> str:
    kernel_loop = asyncio.get_running_loop()
    witness = LoopWitness(run_script_main)
    ran: list[tuple[asyncio.AbstractEventLoop, int]] = []

    async def main() -> str:
        ran.append((asyncio.get_running_loop(), threading.get_ident()))
        await asyncio.sleep(0.001)
        if witness.on_loop_thread():
            time.sleep(BLOCKING_SECONDS)  # noqa: ASYNC251 -- on purpose: the old script blocks its loop
        else:
            witness.wait_in_thread()  # blocks this thread until the notebook's loop answers
        return "AC/DC"

    try:
        got = await _run(run_script_main, main)
    except Wrong as exc:
        if not ran and isinstance(exc, ReturnedCoroutine):
            raise Wrong("main() was called but its body never ran: asyncio.to_thread(main) "
                        "only creates the coroutine, in the thread, and hands it back. Run "
                        "it there on a loop of its own: `await asyncio.to_thread(asyncio.run, "
                        "main())`.") from None
        raise
    if not ran:
        raise Wrong("main never ran: run it, on a loop of its own, and return its result.")
    loop, thread = ran[0]
    if loop is kernel_loop:
        raise Wrong("main ran on the notebook's own loop, so its blocking code blocked your "
                    "notebook's event loop: nothing else could run. Give it a loop of its own in "
                    "a worker thread, and await that thread: "
                    "`await asyncio.to_thread(asyncio.run, main())`.")
    if witness.held:  # seen on the loop's thread, not guessed from a late timer
        raise Wrong("main ran in another thread, but waiting for it blocked your notebook's event "
                    "loop (thread.join() and future.result() wait without awaiting). Await the "
                    "thread instead: `await asyncio.to_thread(asyncio.run, main())`.")
    if got != "AC/DC":
        raise Wrong(f"run_script_main(main) returned {got!r}; return what main() returns, here 'AC/DC'.")
    if thread == threading.get_ident():
        raise Wrong("main ran in the notebook's thread; run it in a worker thread.")
    if not loop.is_closed():
        if not loop.is_running():
            loop.close()
        raise Wrong("main's loop was still open after run_script_main returned: a loop you "
                    "create is yours to close (new_event_loop() or a Runner that is never "
                    "closed leaks its selector and sockets). asyncio.run() closes it for you: "
                    "`await asyncio.to_thread(asyncio.run, main())`.")
    if witness.busy:
        raise TooBusy()
    return "main ran on its own loop in a worker thread, and the notebook's loop kept running."


q5 = Exercise(
    "q5", "run_script_main", _check_run_script_main,
    hints=["A thread that runs no loop may call asyncio.run(); the notebook's thread already "
           "runs one.",
           "asyncio.to_thread(func, *args) runs func(*args) in a worker thread, and you can await it "
           "without blocking the notebook's loop.",
           "`return await asyncio.to_thread(asyncio.run, main())`"],
    title="Run script-style code from a notebook",
)
