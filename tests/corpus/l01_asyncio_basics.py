"""Wrong answers to exercises/01-asyncio-basics-workbook.ipynb."""

import asyncio
import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.corpus import correct, wrong

# --- q1: album_title ------------------------------------------------------------------------


@wrong("q1", expect="forget `await`")
async def album_title_without_await(album_id, fetch_album):
    album = fetch_album(album_id)
    return album["title"]


@wrong("q1", expect="forget `await`")
async def album_title_returns_coroutine(album_id, fetch_album):
    return fetch_album(album_id)


@wrong("q1", expect="forget `await`")
def album_title_sync(album_id, fetch_album):
    album = fetch_album(album_id)
    return None if album is None else album["title"]


@wrong("q1", expect="awaited only once")
async def album_title_awaits_twice(album_id, fetch_album):
    pending = fetch_album(album_id)
    if await pending is None:
        return None
    return (await pending)["title"]


@wrong("q1", expect="await it once")
async def album_title_fetches_twice(album_id, fetch_album):
    if await fetch_album(album_id) is None:
        return None
    return (await fetch_album(album_id))["title"]


@wrong("q1", expect="an id")
async def album_title_wrong_field(album_id, fetch_album):
    album = await fetch_album(album_id)
    return None if album is None else album["artist_id"]


@wrong("q1", expect="whole album dict")
async def album_title_whole_row(album_id, fetch_album):
    return await fetch_album(album_id)


@wrong("q1", expect="check for None")
async def album_title_ignores_missing(album_id, fetch_album):
    album = await fetch_album(album_id)
    return album["title"]


@wrong("q1", expect="empty string")
async def album_title_empty_becomes_none(album_id, fetch_album):
    album = await fetch_album(album_id)
    return (album or {}).get("title") or None


_ALBUM_CACHE: dict = {}


@wrong("q1", expect="without calling fetch_album")
async def album_title_cached_between_calls(album_id, fetch_album):
    if album_id not in _ALBUM_CACHE:
        _ALBUM_CACHE[album_id] = await fetch_album(album_id)
    album = _ALBUM_CACHE[album_id]
    return None if album is None else album["title"]


@wrong("q1", expect="cannot start a loop here")
def album_title_asyncio_run(album_id, fetch_album):
    album = asyncio.run(fetch_album(album_id))
    return None if album is None else album["title"]


@wrong("q1", expect="already running")
def album_title_run_until_complete(album_id, fetch_album):
    album = asyncio.get_event_loop().run_until_complete(fetch_album(album_id))
    return None if album is None else album["title"]


@wrong("q1", expect="second event loop")
def album_title_on_a_thread_loop(album_id, fetch_album):
    with ThreadPoolExecutor(1) as pool:  # "asyncio.run is refused here, so run it elsewhere"
        album = pool.submit(asyncio.run, fetch_album(album_id)).result()
    return None if album is None else album["title"]


# --- q2: track_artist_name --------------------------------------------------------------------


@wrong("q2", expect="forget `await`")
async def track_artist_forgets_one_await(track_id, fetch_track, fetch_album, fetch_artist):
    track = await fetch_track(track_id)
    album = fetch_album(track["album_id"])
    artist = await fetch_artist(album["artist_id"])
    return artist["name"]


@wrong("q2", expect="pass the track's \"album_id\"")
async def track_artist_passes_track_id(track_id, fetch_track, fetch_album, fetch_artist):
    await fetch_track(track_id)
    album = await fetch_album(track_id)
    artist = await fetch_artist(album["artist_id"])
    return artist["name"]


@wrong("q2", expect="pass the album's \"artist_id\"")
async def track_artist_passes_album_id(track_id, fetch_track, fetch_album, fetch_artist):
    track = await fetch_track(track_id)
    await fetch_album(track["album_id"])
    artist = await fetch_artist(track["album_id"])
    return artist["name"]


@wrong("q2", expect="fetch_track ran 2 times")
async def track_artist_fetches_track_twice(track_id, fetch_track, fetch_album, fetch_artist):
    album = await fetch_album((await fetch_track(track_id))["album_id"])
    artist = await fetch_artist(album["artist_id"])
    return f"{artist['name']}" if (await fetch_track(track_id)) else None


@wrong("q2", expect="return its \"name\"")
async def track_artist_returns_row(track_id, fetch_track, fetch_album, fetch_artist):
    track = await fetch_track(track_id)
    album = await fetch_album(track["album_id"])
    return await fetch_artist(album["artist_id"])


@wrong("q2", expect="pass the track's \"album_id\"")
async def track_artist_gathers(track_id, fetch_track, fetch_album, fetch_artist):
    track, album = await asyncio.gather(fetch_track(track_id), fetch_album(track_id))
    artist = await fetch_artist(album["artist_id"])
    return artist["name"]


@wrong("q2", expect="forget `await`")
async def track_artist_returns_coroutine(track_id, fetch_track, fetch_album, fetch_artist):
    track = await fetch_track(track_id)
    album = await fetch_album(track["album_id"])
    return fetch_artist(album["artist_id"])


@wrong("q2", expect="second event loop")
def track_artist_name_on_a_thread_loop(track_id, fetch_track, fetch_album, fetch_artist):
    async def lookups():
        track = await fetch_track(track_id)
        album = await fetch_album(track["album_id"])
        return (await fetch_artist(album["artist_id"]))["name"]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, lookups()).result()


# --- q3: call_hook ------------------------------------------------------------------------------


@wrong("q3", expect="`await` works only on awaitables")
async def call_hook_always_awaits(hook, *args):
    return await hook(*args)


@wrong("q3", expect="await it to get the value")
async def call_hook_never_awaits(hook, *args):
    return hook(*args)


@wrong("q3", expect="not the hook with iscoroutinefunction()")
async def call_hook_tests_the_function(hook, *args):
    if inspect.iscoroutinefunction(hook):
        return await hook(*args)
    return hook(*args)


@wrong("q3", expect="Future (or Task) is awaitable but is not a coroutine")
async def call_hook_tests_iscoroutine(hook, *args):
    result = hook(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result


@wrong("q3", expect="called the hook 2 times")
async def call_hook_calls_twice(hook, *args):
    if inspect.isawaitable(hook(*args)):
        return await hook(*args)
    return hook(*args)


@wrong("q3", expect="cannot start a loop here")
def call_hook_with_asyncio_run(hook, *args):
    result = hook(*args)
    if inspect.isawaitable(result):
        return asyncio.run(result)
    return result


@wrong("q3", expect="exactly the arguments")
async def call_hook_drops_arguments(hook, *args):
    result = hook(args[0]) if args else hook(None)
    if inspect.isawaitable(result):
        result = await result
    return result


@wrong("q3", expect="an awaitable of its own")
async def call_hook_checks_two_types(hook, *args):
    result = hook(*args)
    if inspect.iscoroutine(result) or asyncio.isfuture(result):
        result = await result
    return result


# --- q4: run_steps ------------------------------------------------------------------------------


@wrong("q4", expect="loop of its own")
def run_steps_asyncio_run_each(steps):
    return [asyncio.run(step()) for step in steps]


@wrong("q4", expect="ran at the same time")
def run_steps_gathered(steps):
    async def everything():
        return list(await asyncio.gather(*(step() for step in steps)))

    return asyncio.run(everything())


@wrong("q4", expect="still open")
def run_steps_never_closes(steps):
    runner = asyncio.Runner()
    return [runner.run(step()) for step in steps]


@wrong("q4", expect="plain `def`")
async def run_steps_async(steps):
    return [await step() for step in steps]


@wrong("q4", expect="expected the steps' results in order")
def run_steps_reversed_results(steps):
    with asyncio.Runner() as runner:
        results = [runner.run(step()) for step in steps]
    return results[::-1]


@wrong("q4", expect="forget `await`")
def run_steps_returns_coroutines(steps):
    with asyncio.Runner() as runner:
        runner.run(asyncio.sleep(0))
        return [step() for step in steps]


@wrong("q4", expect="the loop was left open")
def run_steps_without_finally(steps):
    loop = asyncio.new_event_loop()
    results = [loop.run_until_complete(step()) for step in steps]
    loop.close()  # skipped when a step raises
    return results


# --- q5: run_script_main ------------------------------------------------------------------------


@wrong("q5", expect="blocked your notebook's event loop")
async def run_script_main_awaits(main):
    return await main()


@wrong("q5", expect="cannot start a loop here")
async def run_script_main_asyncio_run(main):
    return asyncio.run(main())


@wrong("q5", expect="already running")
async def run_script_main_run_until_complete(main):
    return asyncio.get_running_loop().run_until_complete(main())


@wrong("q5", expect="only creates the coroutine")
async def run_script_main_to_thread_without_run(main):
    return await asyncio.to_thread(main)


@wrong("q5", expect="wait without awaiting")
async def run_script_main_thread_join(main):
    results = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(main())))
    thread.start()
    thread.join()
    return results[0]


@wrong("q5", expect="blocked your notebook's event loop")
async def run_script_main_task(main):
    return await asyncio.create_task(main())


@wrong("q5", expect="return what main() returns")
async def run_script_main_forgets_result(main):
    await asyncio.to_thread(asyncio.run, main())


# --- added for issue 9: a blocked loop, swallowed errors, and right answers ------------------

@wrong("q2", expect="time.sleep() on the event loop's thread")
async def track_artist_name_throttled_with_time_sleep(track_id, fetch_track, fetch_album, fetch_artist):
    track = await fetch_track(track_id)
    time.sleep(0.3)  # the mistake: "throttling" that blocks the loop
    album = await fetch_album(track["album_id"])
    artist = await fetch_artist(album["artist_id"])
    return artist["name"]


@wrong("q1", expect="time.sleep() on the event loop's thread")
async def album_title_waits_with_time_sleep(album_id, fetch_album):
    time.sleep(0.01)  # the mistake
    album = await fetch_album(album_id)
    return None if album is None else album["title"]


@wrong("q3", expect="swallows the hook's own TypeErrors")
async def call_hook_eafp_type_error(hook, *args):
    result = hook(*args)
    try:
        return await result
    except TypeError:  # "not awaitable": but the hook's own TypeError lands here too
        return result


@correct("q1")
async def album_title_with_conditional(album_id, fetch_album):
    album = await fetch_album(album_id)
    return album["title"] if album else None


@correct("q2")
async def track_artist_name_nested(track_id, fetch_track, fetch_album, fetch_artist):
    return (await fetch_artist((await fetch_album((await fetch_track(track_id))["album_id"]))["artist_id"]))["name"]


@correct("q3")
async def call_hook_with_dunder_await(hook, *args):
    result = hook(*args)
    if hasattr(result, "__await__"):
        return await result
    return result


@correct("q4")
def run_steps_with_own_loop(steps):
    loop = asyncio.new_event_loop()
    try:
        return [loop.run_until_complete(step()) for step in steps]
    finally:
        loop.close()


@correct("q5")
async def run_script_main_in_executor(main):
    return await asyncio.get_running_loop().run_in_executor(None, asyncio.run, main())


# --- loops never closed, and loops closed by hand ----------------------------------------------


@wrong("q4", expect="still open after run_steps returned")
def run_steps_runner_never_closed(steps):
    runner = asyncio.Runner()  # its loop is created on the first run() and never closed
    return [runner.run(step()) for step in steps]


@wrong("q5", expect="loop was still open after run_script_main returned")
async def run_script_main_new_loop_never_closed(main):
    loop = asyncio.new_event_loop()
    return await asyncio.to_thread(loop.run_until_complete, main())


@wrong("q5", expect="loop was still open after run_script_main returned")
async def run_script_main_runner_never_closed(main):
    runner = asyncio.Runner()
    return await asyncio.to_thread(runner.run, main())


@correct("q5")
async def run_script_main_new_loop_closed_in_the_thread(main):
    def run():
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()

    return await asyncio.to_thread(run)


@correct("q5")
async def run_script_main_runner_in_the_thread(main):
    def run():
        with asyncio.Runner() as runner:
            return runner.run(main())

    return await asyncio.to_thread(run)


@wrong("q3", expect="a falsy result")
async def call_hook_awaits_only_truthy_awaitables(hook, *args):
    result = hook(*args)
    if not result:  # "nothing to await"
        return None
    if inspect.isawaitable(result):
        return await result
    return result


@correct("q3")
async def call_hook_conditional_expression(hook, *args):
    result = hook(*args)
    return await result if inspect.isawaitable(result) else result


# --- more ways to be right and wrong on q1 and q2 ------------------------------------------------


@correct("q1")
async def album_title_with_get(album_id, fetch_album):
    return (await fetch_album(album_id) or {}).get("title")


@wrong("q1", expect="so return None")
async def album_title_empty_string_for_missing(album_id, fetch_album):
    album = await fetch_album(album_id)
    return album["title"] if album else ""


@wrong("q2", expect="pass the track's \"album_id\"")
async def track_artist_name_album_fetched_beside_the_track(track_id, fetch_track, fetch_album, fetch_artist):
    _, album = await asyncio.gather(fetch_track(track_id), fetch_album(163))  # a guessed album
    return (await fetch_artist(album["artist_id"]))["name"]


# --- q3: a blanket except around the hook ---------------------------------------------------

@wrong("q3", expect="both kinds were swallowed")
async def call_hook_blanket_except_returns_none(hook, *args):
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            return await result
        return result
    except Exception:  # the mistake: the hook's own errors vanish
        return None


@wrong("q3", expect="a LookupError from the hook did get through")
async def call_hook_catches_type_error_around_await(hook, *args):
    result = hook(*args)
    if not inspect.isawaitable(result):
        return result
    try:
        return await result
    except TypeError:  # the mistake: meant for "not awaitable", catches the hook's TypeError
        return None


@correct("q3")
async def call_hook_reraises_after_logging(hook, *args):
    try:
        result = hook(*args)
        return await result if inspect.isawaitable(result) else result
    except Exception as exc:
        exc.add_note(f"in hook {getattr(hook, '__name__', hook)!r}")
        raise
