"""Wrong answers to exercises/02-concurrency-workbook.ipynb."""

import asyncio
import threading
import time

from tests.corpus import correct, wrong

# --- q1: fetch_all ---------------------------------------------------------------------------


@wrong("q1", expect="one at a time")
async def fetch_all_sequential(ids, fetch_one):
    return [await fetch_one(track_id) for track_id in ids]


@wrong("q1", expect="order the queries finished")
async def fetch_all_as_completed(ids, fetch_one):
    return [await done for done in asyncio.as_completed([fetch_one(i) for i in ids])]


@wrong("q1", expect="order the queries finished")
async def fetch_all_appends_when_done(ids, fetch_one):
    names = []

    async def one(track_id):
        names.append(await fetch_one(track_id))

    await asyncio.gather(*(one(track_id) for track_id in ids))
    return names


@wrong("q1", expect="forget `await`")
async def fetch_all_without_await(ids, fetch_one):
    return [fetch_one(track_id) for track_id in ids]


@wrong("q1", expect="forget `await`")
async def fetch_all_returns_gather(ids, fetch_one):
    return asyncio.gather(*(fetch_one(track_id) for track_id in ids))


@wrong("q1", expect="task.result()")
async def fetch_all_returns_tasks(ids, fetch_one):
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(fetch_one(track_id)) for track_id in ids]
    return tasks


@wrong("q1", expect="should return a list")
async def fetch_all_returns_dict(ids, fetch_one):
    names = await asyncio.gather(*(fetch_one(track_id) for track_id in ids))
    return dict(zip(ids, names))


@wrong("q1", expect="no sorting")
async def fetch_all_sorted(ids, fetch_one):
    return sorted(await asyncio.gather(*(fetch_one(track_id) for track_id in ids)))


@wrong("q1", expect="no sorting")
async def fetch_all_deduplicated(ids, fetch_one):
    unique = sorted(set(ids))
    names = await asyncio.gather(*(fetch_one(track_id) for track_id in unique))
    return [dict(zip(unique, names))[track_id] for track_id in unique]


# --- q2: fetch_bounded -----------------------------------------------------------------------


@wrong("q2", expect="are allowed")
async def fetch_bounded_ignores_limit(ids, fetch_one, limit):
    return await asyncio.gather(*(fetch_one(track_id) for track_id in ids))


@wrong("q2", expect="created once and shared")
async def fetch_bounded_semaphore_per_task(ids, fetch_one, limit):
    async def one(track_id):
        async with asyncio.Semaphore(limit):
            return await fetch_one(track_id)

    return await asyncio.gather(*(one(track_id) for track_id in ids))


@wrong("q2", expect="are allowed")
async def fetch_bounded_off_by_one(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(limit + 1)

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return await asyncio.gather(*(one(track_id) for track_id in ids))


@wrong("q2", expect="use all 3 slots")
async def fetch_bounded_one_slot_short(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(max(1, limit - 1))

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return await asyncio.gather(*(one(track_id) for track_id in ids))


@wrong("q2", expect="left slots idle")
async def fetch_bounded_in_batches(ids, fetch_one, limit):
    names = []
    for start in range(0, len(ids), limit):
        batch = ids[start:start + limit]
        names += await asyncio.gather(*(fetch_one(track_id) for track_id in batch))
    return names


@wrong("q2", expect="sequential loop")
async def fetch_bounded_sequential(ids, fetch_one, limit):
    return [await fetch_one(track_id) for track_id in ids]


@wrong("q2", expect="order the queries finished")
async def fetch_bounded_as_completed(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return [await done for done in asyncio.as_completed([one(i) for i in ids])]


@wrong("q2", expect="use all 8 slots")
async def fetch_bounded_capped_at_five(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(min(limit, 5))  # "never more than 5 connections anyway"

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return await asyncio.gather(*(one(track_id) for track_id in ids))


_KEPT_SEMAPHORE: dict = {}


@wrong("q2", expect="limit of the call before")
async def fetch_bounded_semaphore_kept_between_calls(ids, fetch_one, limit):
    semaphore = _KEPT_SEMAPHORE.setdefault("sem", asyncio.Semaphore(limit))

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return list(await asyncio.gather(*(one(track_id) for track_id in ids)))


# --- q3: with_timeout ------------------------------------------------------------------------


@wrong("q3", expect="still running")
async def with_timeout_wait_without_cancel(coro_fn, seconds, default):
    task = asyncio.create_task(coro_fn())
    done, _pending = await asyncio.wait({task}, timeout=seconds)
    return task.result() if done else default


@wrong("q3", expect="still running")
async def with_timeout_shielded(coro_fn, seconds, default):
    try:
        return await asyncio.wait_for(asyncio.shield(coro_fn()), timeout=seconds)
    except TimeoutError:
        return default


@wrong("q3", expect="swallowed the CancelledError")
async def with_timeout_swallows_cancellation(coro_fn, seconds, default):
    async with asyncio.timeout(seconds):
        try:
            return await coro_fn()
        except asyncio.CancelledError:  # also swallows a cancellation by the caller
            return default


@wrong("q3", expect="sits out the whole deadline")
async def with_timeout_sleeps_out_the_deadline(coro_fn, seconds, default):
    task = asyncio.create_task(coro_fn())
    await asyncio.sleep(seconds)
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return default


@wrong("q3", expect="catch TimeoutError, not Exception")
async def with_timeout_catches_everything(coro_fn, seconds, default):
    try:
        async with asyncio.timeout(seconds):
            return await coro_fn()
    except Exception:
        return default


@wrong("q3", expect="no deadline")
async def with_timeout_without_deadline(coro_fn, seconds, default):
    result = await coro_fn()
    return default if result is None else result


@wrong("q3", expect="return `default`")
async def with_timeout_raises(coro_fn, seconds, default):
    async with asyncio.timeout(seconds):
        return await coro_fn()


@wrong("q3", expect="falsy")
async def with_timeout_or_default(coro_fn, seconds, default):
    try:
        return await asyncio.wait_for(coro_fn(), timeout=seconds) or default
    except TimeoutError:
        return default


@wrong("q3", expect="forget `await`")
async def with_timeout_returns_coroutine(coro_fn, seconds, default):
    try:
        async with asyncio.timeout(seconds):
            return coro_fn()
    except TimeoutError:
        return default


@wrong("q3", expect="nobody cancelled it")
async def with_timeout_awaits_its_cancelled_task(coro_fn, seconds, default):
    task = asyncio.create_task(coro_fn())
    _done, pending = await asyncio.wait({task}, timeout=seconds)
    if pending:
        task.cancel()
        await task  # raises CancelledError: the task was cancelled
        return default
    return task.result()


@wrong("q3", expect="or None")
async def with_timeout_none_means_timed_out(coro_fn, seconds, default):
    result = None
    try:
        async with asyncio.timeout(seconds):
            result = await coro_fn()
    except TimeoutError:
        pass
    return default if result is None else result


# --- q4: lookup_without_blocking -------------------------------------------------------------


@wrong("q4", expect="blocked the loop")
async def lookup_blocking_directly(blocking_fn, arg):
    return blocking_fn(arg)


@wrong("q4", expect="blocked the loop")
async def lookup_after_a_yield(blocking_fn, arg):
    await asyncio.sleep(0)  # an await does not make the next line non-blocking
    return blocking_fn(arg)


@wrong("q4", expect="argument separately")
async def lookup_calls_before_to_thread(blocking_fn, arg):
    return await asyncio.to_thread(blocking_fn(arg))


@wrong("q4", expect="waiting for it blocked")
async def lookup_joins_thread(blocking_fn, arg):
    result = []
    worker = threading.Thread(target=lambda: result.append(blocking_fn(arg)))
    worker.start()
    worker.join()
    return result[0]


@wrong("q4", expect="time.sleep")
async def lookup_polls_with_time_sleep(blocking_fn, arg):
    result = []
    worker = threading.Thread(target=lambda: result.append(blocking_fn(arg)))
    worker.start()
    while worker.is_alive():
        time.sleep(0.01)  # should be `await asyncio.sleep(0.01)`: this blocks the loop
    return result[0]


@wrong("q4", expect="forget `await`")
async def lookup_without_await(blocking_fn, arg):
    return asyncio.to_thread(blocking_fn, arg)


# --- q5: fetch_some ----------------------------------------------------------------------------


@wrong("q5", expect="ExceptionGroup")
async def fetch_some_task_group(ids, fetch_one):
    async with asyncio.TaskGroup() as tg:
        tasks = {track_id: tg.create_task(fetch_one(track_id)) for track_id in ids}
    return {track_id: task.result() for track_id, task in tasks.items()}


@wrong("q5", expect="cancelled")
async def fetch_some_task_group_except_star(ids, fetch_one):
    tasks = {}
    try:
        async with asyncio.TaskGroup() as tg:
            for track_id in ids:
                tasks[track_id] = tg.create_task(fetch_one(track_id))
    except* Exception:
        pass
    return {track_id: task.result() for track_id, task in tasks.items()
            if not task.cancelled() and task.exception() is None}


@wrong("q5", expect="return_exceptions=True")
async def fetch_some_plain_gather(ids, fetch_one):
    names = await asyncio.gather(*(fetch_one(track_id) for track_id in ids))
    return dict(zip(ids, names))


@wrong("q5", expect="exception objects")
async def fetch_some_keeps_exceptions(ids, fetch_one):
    results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)
    return {track_id: result for track_id, result in zip(ids, results) if result is not None}


@wrong("q5", expect="catching only some error types")
async def fetch_some_catches_only_lookup(ids, fetch_one):
    async def one(track_id):
        try:
            return track_id, await fetch_one(track_id)
        except LookupError:
            return track_id, None

    pairs = await asyncio.gather(*(one(track_id) for track_id in ids))
    return {track_id: name for track_id, name in pairs if name is not None}


@wrong("q5", expect="one after another")
async def fetch_some_sequential(ids, fetch_one):
    found = {}
    for track_id in ids:
        try:
            found[track_id] = await fetch_one(track_id)
        except Exception:
            continue
    return found


@wrong("q5", expect="swallowed the CancelledError")
async def fetch_some_catches_base_exception(ids, fetch_one):
    try:
        results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)
    except BaseException:  # "whatever happens, return what we have"
        return {}
    return {i: r for i, r in zip(ids, results) if not isinstance(r, BaseException)}


@wrong("q5", expect="went on running")
async def fetch_some_with_wait(ids, fetch_one):
    tasks = [asyncio.create_task(fetch_one(i)) for i in ids]
    if tasks:
        await asyncio.wait(tasks)
    return {i: t.result() for i, t in zip(ids, tasks) if t.exception() is None}


# --- q6: track_name ----------------------------------------------------------------------------


@wrong("q6", expect="when the query raised an error")
async def track_name_without_finally(pool, track_id):
    conn = await pool.acquire()
    name = await conn.fetch_name(track_id)
    await pool.release(conn)
    return name


@wrong("q6", expect="does not catch cancellation")
async def track_name_except_exception(pool, track_id):
    conn = await pool.acquire()
    try:
        name = await conn.fetch_name(track_id)
    except Exception:
        await pool.release(conn)
        raise
    await pool.release(conn)
    return name


@wrong("q6", expect="swallowed the CancelledError")
async def track_name_swallows_cancel(pool, track_id):
    conn = await pool.acquire()
    try:
        return await conn.fetch_name(track_id)
    except asyncio.CancelledError:
        return None
    finally:
        await pool.release(conn)


@wrong("q6", expect="swallowed the CancelledError")
async def track_name_catches_base_exception(pool, track_id):
    conn = await pool.acquire()
    try:
        name = await conn.fetch_name(track_id)
    except BaseException as exc:
        await pool.release(conn)
        if isinstance(exc, Exception):
            raise
        return None
    await pool.release(conn)
    return name


@wrong("q6", expect="never awaited")
async def track_name_release_not_awaited(pool, track_id):
    conn = await pool.acquire()
    try:
        return await conn.fetch_name(track_id)
    finally:
        pool.release(conn)


@wrong("q6", expect="twice")
async def track_name_releases_twice(pool, track_id):
    conn = await pool.acquire()
    try:
        name = await conn.fetch_name(track_id)
        await pool.release(conn)
        return name
    finally:
        await pool.release(conn)


@wrong("q6", expect="still running on it")
async def track_name_shields_the_query(pool, track_id):
    conn = await pool.acquire()
    try:
        return await asyncio.shield(conn.fetch_name(track_id))
    finally:
        await pool.release(conn)


@wrong("q6", expect="released a connection that was never acquired")
async def track_name_acquires_inside_try(pool, track_id):
    try:
        conn = await pool.acquire()
        return await conn.fetch_name(track_id)
    finally:
        await pool.release(conn)


# --- added for issue 9: inputs beyond the test data, a blocked loop, and right answers ------

@wrong("q1", expect="at most 5 queries in flight")
async def fetch_all_in_batches_of_five(ids, fetch_one):
    names = []
    for start in range(0, len(ids), 5):  # right for the small cases only
        names += await asyncio.gather(*(fetch_one(i) for i in ids[start:start + 5]))
    return names


@wrong("q1", expect="at most 10 queries in flight")
async def fetch_all_in_batches_of_ten(ids, fetch_one):
    names = []
    for start in range(0, len(ids), 10):
        names += await asyncio.gather(*(fetch_one(i) for i in ids[start:start + 10]))
    return names


@wrong("q3", expect="time.sleep() on the event loop's thread")
async def with_timeout_sleeps_the_deadline(coro_fn, seconds, default):
    task = asyncio.ensure_future(coro_fn())
    time.sleep(seconds)  # the mistake: blocks the loop, so the task cannot run
    if task.done():
        return task.result()
    task.cancel()
    return default


@wrong("q3", expect="time.sleep() on the event loop's thread")
async def with_timeout_polls_with_time_sleep(coro_fn, seconds, default):
    task = asyncio.ensure_future(coro_fn())
    waited = 0.0
    while not task.done() and waited < seconds:
        time.sleep(0.01)  # the mistake
        waited += 0.01
        await asyncio.sleep(0)
    if task.done():
        return task.result()
    task.cancel()
    return default


@correct("q1")
async def fetch_all_with_task_group(ids, fetch_one):
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(fetch_one(i)) for i in ids]
    return [task.result() for task in tasks]


@correct("q1")
async def fetch_all_with_wait(ids, fetch_one):
    if not ids:
        return []
    tasks = [asyncio.ensure_future(fetch_one(i)) for i in ids]
    try:
        await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for finished tasks; stops the rest if we were cancelled
    return [task.result() for task in tasks]


@wrong("q1", expect="went on running")
async def fetch_all_with_wait_leaves_tasks(ids, fetch_one):
    if not ids:
        return []
    tasks = [asyncio.ensure_future(fetch_one(i)) for i in ids]
    await asyncio.wait(tasks)  # cancelled here, the tasks go on
    return [task.result() for task in tasks]


@wrong("q2", expect="swallowed the CancelledError")
async def fetch_bounded_swallows_cancellation(ids, fetch_one, limit):
    gate = asyncio.Semaphore(limit)

    async def one(track_id):
        async with gate:
            return await fetch_one(track_id)

    try:
        return await asyncio.gather(*(one(i) for i in ids))
    except asyncio.CancelledError:
        return []


@correct("q2")
async def fetch_bounded_with_workers(ids, fetch_one, limit):
    queue = asyncio.Queue()
    for position, track_id in enumerate(ids):
        queue.put_nowait((position, track_id))
    names = [None] * len(ids)

    async def worker():
        while not queue.empty():
            position, track_id = queue.get_nowait()
            names[position] = await fetch_one(track_id)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(limit, len(ids))):
            tg.create_task(worker())
    return names


@correct("q2")
async def fetch_bounded_with_task_group(ids, fetch_one, limit):
    gate = asyncio.Semaphore(limit)

    async def one(track_id):
        async with gate:
            return await fetch_one(track_id)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(i)) for i in ids]
    return [task.result() for task in tasks]


@correct("q3")
async def with_timeout_timeout_at(coro_fn, seconds, default):
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + seconds) as deadline:
            result = await coro_fn()
    except TimeoutError:
        if not deadline.expired():
            raise
        return default
    return result


class _OwnTimeout(Exception):
    """coro_fn's own TimeoutError, carried past the deadline's `except`."""


@correct("q3")
async def with_timeout_wait_for_wrapping_its_own_timeout(coro_fn, seconds, default):
    async def guarded():
        try:
            return await coro_fn()
        except TimeoutError as exc:
            raise _OwnTimeout() from exc

    try:
        return await asyncio.wait_for(guarded(), timeout=seconds)
    except TimeoutError:
        return default
    except _OwnTimeout as wrapped:
        raise wrapped.__cause__ from None


@correct("q4")
async def lookup_with_run_in_executor(blocking_fn, arg):
    return await asyncio.get_running_loop().run_in_executor(None, blocking_fn, arg)


@correct("q5")
async def fetch_some_with_wait_that_cancels(ids, fetch_one):
    if not ids:
        return {}
    tasks = {asyncio.ensure_future(fetch_one(i)): i for i in ids}
    try:
        await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for the finished ones; stops the rest if we were cancelled
    return {i: t.result() for t, i in tasks.items() if not t.cancelled() and t.exception() is None}


@correct("q5")
async def fetch_some_task_group_catching_inside(ids, fetch_one):
    found = {}

    async def one(track_id):
        try:
            found[track_id] = await fetch_one(track_id)
        except Exception:  # a failed query is skipped, as asked
            pass

    async with asyncio.TaskGroup() as tg:
        for track_id in ids:
            tg.create_task(one(track_id))
    return {track_id: found[track_id] for track_id in ids if track_id in found}


@correct("q6")
async def track_name_with_except_base_exception(pool, track_id):
    conn = await pool.acquire()
    try:
        name = await conn.fetch_name(track_id)
    except BaseException:
        await pool.release(conn)
        raise
    await pool.release(conn)
    return name


@wrong("q2", expect="starts the query at once, before any semaphore is acquired")
async def fetch_bounded_tasks_before_semaphore(ids, fetch_one, limit):
    gate = asyncio.Semaphore(limit)
    tasks = [asyncio.ensure_future(fetch_one(i)) for i in ids]

    async def wait(task):
        async with gate:
            return await task

    return list(await asyncio.gather(*(wait(t) for t in tasks)))


@wrong("q3", expect="task.cancel() only requests the cancellation")
async def with_timeout_cancel_not_awaited(coro_fn, seconds, default):
    task = asyncio.ensure_future(coro_fn())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return default
    return task.result()


# --- a failed query kept as a result, a falsy name dropped, the work's own TimeoutError --------


@wrong("q1", expect="returned its exception in the list")
async def fetch_all_keeps_exceptions(ids, fetch_one):
    return await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)


@wrong("q1", expect="the empty name of track 13")
async def fetch_all_drops_falsy_names(ids, fetch_one):
    names = await asyncio.gather(*(fetch_one(i) for i in ids))
    return [name for name in names if name]


@wrong("q1", expect="let the error reach the caller")
async def fetch_all_skips_failures(ids, fetch_one):
    results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)
    return [r for r in results if not isinstance(r, BaseException)]


@correct("q1")
async def fetch_all_taskgroup_results(ids, fetch_one):
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(fetch_one(i)) for i in ids]
    return [task.result() for task in tasks]


@correct("q1")
async def fetch_all_return_exceptions_then_raise(ids, fetch_one):
    results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@wrong("q2", expect="returned its exception in the list")
async def fetch_bounded_keeps_exceptions(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    return await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)


@wrong("q2", expect="returned its exception in the list")
async def fetch_bounded_catches_inside(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(track_id):
        async with semaphore:
            try:
                return await fetch_one(track_id)
            except Exception as exc:  # the mistake under test
                return exc

    return await asyncio.gather(*(one(i) for i in ids))


@correct("q2")
async def fetch_bounded_taskgroup(ids, fetch_one, limit):
    semaphore = asyncio.Semaphore(limit)

    async def one(track_id):
        async with semaphore:
            return await fetch_one(track_id)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(i)) for i in ids]
    return [task.result() for task in tasks]


@wrong("q3", expect="TimeoutError of its own")
async def with_timeout_catches_every_timeout(coro_fn, seconds, default):
    try:
        async with asyncio.timeout(seconds):
            return await coro_fn()
    except TimeoutError:
        return default


@wrong("q3", expect="TimeoutError of its own")
async def with_timeout_wait_for_catches_every_timeout(coro_fn, seconds, default):
    try:
        return await asyncio.wait_for(coro_fn(), timeout=seconds)
    except TimeoutError:
        return default


@correct("q3")
async def with_timeout_tells_its_deadline_by_expired(coro_fn, seconds, default):
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await coro_fn()
    except TimeoutError:
        if deadline.expired():
            return default
        raise


@wrong("q5", expect="dropped it")
async def fetch_some_none_for_failures_then_truthiness(ids, fetch_one):
    async def one(track_id):
        try:
            return await fetch_one(track_id)
        except Exception:  # a failed query is skipped
            return None

    names = await asyncio.gather(*(one(i) for i in ids))
    return {i: name for i, name in zip(ids, names, strict=True) if name}


@wrong("q5", expect="dropped it")
async def fetch_some_truthy_and_not_exception(ids, fetch_one):
    results = await asyncio.gather(*(fetch_one(i) for i in ids), return_exceptions=True)
    return {i: r for i, r in zip(ids, results, strict=True) if r and not isinstance(r, BaseException)}


@correct("q5")
async def fetch_some_none_for_failures_is_none(ids, fetch_one):
    failed = object()

    async def one(track_id):
        try:
            return await fetch_one(track_id)
        except Exception:  # a failed query is skipped
            return failed

    names = await asyncio.gather(*(one(i) for i in ids))
    return {i: name for i, name in zip(ids, names, strict=True) if name is not failed}


# --- a repeated id -------------------------------------------------------------------------------


@wrong("q1", expect="fetch_all([3, 8, 3], fetch_one) returned")
async def fetch_all_through_a_dict(ids, fetch_one):
    names = await asyncio.gather(*(fetch_one(i) for i in ids))
    return list(dict(zip(ids, names, strict=True)).values())  # a repeated id comes back once


@correct("q1")
async def fetch_all_asks_each_distinct_id_once(ids, fetch_one):
    distinct = list(dict.fromkeys(ids))
    names = dict(zip(distinct, await asyncio.gather(*(fetch_one(i) for i in distinct)), strict=True))
    return [names[i] for i in ids]


@correct("q5")
async def fetch_some_asks_each_distinct_id_once(ids, fetch_one):
    distinct = list(dict.fromkeys(ids))
    results = await asyncio.gather(*(fetch_one(i) for i in distinct), return_exceptions=True)
    return {i: r for i, r in zip(distinct, results, strict=True) if not isinstance(r, BaseException)}
