"""Behaviour probes that checks use instead of the wall clock.

- InFlight: how many calls of an async function ran at the same time.
- Heartbeat: whether the event loop was blocked while some code ran (ticks and gaps).
- LoopWitness: whether the event loop stayed free while a blocking call ran in a worker thread,
  judged by what the loop did, not by a timer: on a busy machine timers fire late.
- checked_out(): how many pool connections are still out after a call.
- StatementCounter: how many SQL statements a SQLAlchemy engine executed.
- fail_on_call(): make the n-th call fail, to prove a transaction rolls back.
- ListThatBreaks, breaks_after(): input that fails midway, a failure that is not the database's.
- HOSTILE_INPUTS: strings that break SQL built by hand.
- sleeps_on_loop(): time.sleep() called on the loop's own thread, seen directly, not timed.
- ConnectionLeaks: pooled connections a call never gave back, closed quietly by the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any


class InFlight:
    """Count calls of an async function in flight: the peak shows real concurrency.

        probe = InFlight()
        fake_query = probe.track(fake_query)
        ...
        probe.peak   # most calls running at once
        probe.foreign_loop   # True if a call ran on a loop other than the one that made the probe
    """

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started = 0
        self.finished = 0
        self.cancelled = 0
        self.foreign_loop = False
        try:
            self._home: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._home = None

    def track(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            if self._home is not None and asyncio.get_running_loop() is not self._home:
                self.foreign_loop = True  # a real connection would fail: it belongs to one loop
            self.now += 1
            self.started += 1
            self.peak = max(self.peak, self.now)
            try:
                result = await fn(*args, **kwargs)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.now -= 1
            self.finished += 1
            return result

        return tracked


class Heartbeat:
    """Tick every `interval` seconds while code runs; a long gap means the loop was blocked.

        async with Heartbeat() as beat:
            await learner_code()
        beat.blocked      # True if some tick came `limit` seconds late or later
    """

    def __init__(self, interval: float = 0.01, limit: float = 1.0) -> None:
        self.interval = interval
        # Generous: a busy machine delays a tick by 0.3-0.5 s; real blocking that a lesson shows
        # lasts well over a second. Checks do not trust a gap alone: see LoopWitness.
        self.limit = limit
        self.longest_gap = 0.0
        self.lateness = 0.0  # all the ticks' delays added up: how much time the loop lost
        self.ticks = 0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = now - self._last - self.interval
        self.longest_gap = max(self.longest_gap, gap)
        self.lateness += max(gap, 0.0)
        self._last = now

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._tick()
            self.ticks += 1

    async def __aenter__(self) -> Heartbeat:
        self._last = time.perf_counter()
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)  # let the heartbeat start before the measured code
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._tick()  # a stall at the very end counts too
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    @property
    def blocked(self) -> bool:
        return self.longest_gap >= self.limit


class LoopWitness:
    """Tell whether the event loop stays free while a blocking stand-in runs in a worker thread.

    Made on the loop, next to the learner's function:

        witness = LoopWitness(answer)
        def blocking_lookup(x):          # handed to the learner, who must run it off the loop
            witness.wait_in_thread()     # in a worker thread: does the loop still answer?
            ...
        witness.verdicts                 # ["free"], ["held"] or ["busy"]

    wait_in_thread() asks the loop to run a callback and waits for it. A free loop runs it at
    once; a busy machine may delay that by a second or two. A loop held by the learner's code,
    waiting without awaiting (thread.join(), future.result(), time.sleep()), cannot run it at
    all, and then the learner's own frame is seen on the loop thread's stack: that sight, not a
    late timer, is the evidence. When the loop neither answers nor shows the learner's code in
    `patience` seconds, the verdict is "busy": the machine was too busy to judge.
    """

    def __init__(self, answer: Any = None, patience: float = 5.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.patience = patience
        self.verdicts: list[str] = []
        self._codes, self._files = _code_of(answer)

    def on_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's own thread (a blocking call there blocks it)."""
        return threading.get_ident() == self.thread

    def wait_in_thread(self) -> str:
        """From a worker thread: wait until the loop answers; return and record the verdict."""
        answered = threading.Event()
        self.loop.call_soon_threadsafe(answered.set)
        deadline = time.monotonic() + self.patience
        seen_holding = 0
        verdict = "busy"
        while time.monotonic() < deadline:
            if answered.wait(0.1):
                verdict = "free"
                break
            seen_holding = seen_holding + 1 if self._learner_holds_loop() else 0
            if seen_holding >= 5:  # the learner's code sat on the loop's thread for 0.5 s
                verdict = "held"
                break
        self.verdicts.append(verdict)
        return verdict

    def _learner_holds_loop(self) -> bool:
        frame = sys._current_frames().get(self.thread)
        while frame is not None:
            code = frame.f_code
            if code in self._codes or code.co_filename in self._files:
                return True
            frame = frame.f_back
        return False

    @property
    def held(self) -> bool:
        return "held" in self.verdicts

    @property
    def busy(self) -> bool:
        return "busy" in self.verdicts and not self.held


def _code_of(answer: Any) -> tuple[set[Any], set[str]]:
    """The code objects of a learner's function, and the files (notebook cells) they came from,
    leaving out the course's own files and the standard library's."""
    codes: set[Any] = set()
    fn = inspect.unwrap(answer) if callable(answer) else None
    fn = getattr(fn, "func", fn)  # functools.partial
    code = getattr(fn, "__code__", None)
    if code is None:
        return codes, set()
    codes.add(code)
    ours = (__file__.rsplit("/", 1)[0], asyncio.__file__.rsplit("/", 2)[0])
    files = {code.co_filename} if not code.co_filename.startswith(ours) else set()
    return codes, files


def checked_out(pool: Any) -> int:
    """Connections currently checked out of an asyncpg pool or a SQLAlchemy engine's pool."""
    if hasattr(pool, "get_idle_size"):  # asyncpg.Pool
        return int(pool.get_size() - pool.get_idle_size())
    engine = getattr(pool, "sync_engine", pool)  # AsyncEngine -> Engine
    inner = getattr(engine, "pool", engine)  # Engine -> Pool
    if hasattr(inner, "checkedout"):
        return int(inner.checkedout())
    raise TypeError(f"{type(inner).__name__} does not count checked-out connections; use a QueuePool")


async def close_pool(pool: Any) -> None:
    """Close an asyncpg pool that a check was given: gracefully when every connection came back,
    otherwise terminate it (close() would wait for ever on a connection the learner kept)."""
    if pool is None:
        return
    await asyncio.sleep(0)
    _retrieve_releases()
    if checked_out(pool):
        pool.terminate()
        return
    try:
        async with asyncio.timeout(2):
            await pool.close()
    except TimeoutError:
        pool.terminate()


def _retrieve_releases() -> None:
    """asyncpg hands a connection back in a shielded task when the acquiring task is cancelled
    (a time limit, a TaskGroup's abort). Terminated meanwhile, that task fails with nobody to
    see it, and asyncio would print "Task exception was never retrieved" under a later cell."""
    for task in asyncio.all_tasks():
        if getattr(task.get_coro(), "__qualname__", "") == "PoolConnectionHolder.release":
            task.add_done_callback(lambda done: done.cancelled() or done.exception())


class StatementCounter:
    """Count SQL statements a SQLAlchemy engine executes (sync or async engine).

        with StatementCounter(engine) as counter:
            await load_things()
        counter.count, counter.statements
    """

    def __init__(self, engine: Any) -> None:
        self.engine = getattr(engine, "sync_engine", engine)
        self.statements: list[str] = []

    def _on_execute(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                    executemany: bool) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    @property
    def count(self) -> int:
        return len(self.statements)


class InjectedFailure(Exception):
    """The failure a check injects on purpose."""


def fail_on_call(fn: Callable[..., Any], n: int, exc: BaseException | None = None) -> Callable[..., Any]:
    """Wrap fn (sync or async) so that its n-th call raises InjectedFailure instead of running."""
    calls = 0

    def _tick() -> None:
        nonlocal calls
        calls += 1
        if calls == n:
            raise exc or InjectedFailure(f"injected failure on call {n}")

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def failing_async(*args: Any, **kwargs: Any) -> Any:
            _tick()
            return await fn(*args, **kwargs)

        return failing_async

    @functools.wraps(fn)
    def failing(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return fn(*args, **kwargs)

    return failing


# Inputs that break or subvert SQL built from strings; bound parameters treat them as data.
HOSTILE_INPUTS: tuple[str, ...] = (
    "x' OR '1'='1",
    "O'Brien",
    "'; DROP TABLE track; --",
    'Guns N\' Roses "live"',
    "%",
    "_",
)


def breaks_after(items: list[Any], what: str) -> Iterator[Any]:
    """Yield `items`, then raise InjectedFailure, as if the input itself broke midway: a failure
    that is not the database's."""
    yield from items
    raise InjectedFailure(f"{what} broke after {len(items)} of its items")


class ListThatBreaks(list[Any]):
    """A list (len() works) that fails when read past its first `good` items, by iteration or
    by index: proves a transaction rolls back on a failure that is not a database error."""

    def __init__(self, items: list[Any], good: int, what: str) -> None:
        super().__init__(items)
        self._good = good
        self._what = what

    def __iter__(self) -> Iterator[Any]:
        return breaks_after([list.__getitem__(self, i) for i in range(self._good)], self._what)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if (index if index >= 0 else len(self) + index) >= self._good:
            raise InjectedFailure(f"{self._what} broke at item {index}")
        return list.__getitem__(self, index)


@contextlib.contextmanager
def sleeps_on_loop(fail: Callable[[float], BaseException] | None = None) -> Iterator[list[float]]:
    """Record every time.sleep(seconds) made meanwhile on this thread (the event loop's): a call
    that blocks the loop, seen where it happens rather than timed. Given `fail`, such a call
    raises fail(seconds) at once instead of sleeping. Other threads sleep as usual.

        with sleeps_on_loop() as slept:
            await learner_code()
        slept   # the seconds asked for, one entry per call on the loop's thread
    """
    loop_thread = threading.get_ident()
    real = time.sleep
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        if threading.get_ident() != loop_thread:
            real(seconds)
            return
        slept.append(seconds)
        if fail is not None:
            raise fail(seconds)
        real(seconds)

    time.sleep = sleep  # type: ignore[assignment]  # typeshed also allows SupportsIndex; lessons pass floats
    try:
        yield slept
    finally:
        time.sleep = real


class ConnectionLeaks:
    """Every pooled SQLAlchemy connection handed out while the block runs, and afterwards the
    ones never given back, closed by the check itself so that nothing about them (SQLAlchemy's
    "garbage collector is trying to clean up non-checked-in connection", aiosqlite's "Event
    loop is closed") prints later, under some other cell.

        with ConnectionLeaks() as leaks:       # every pool, or ConnectionLeaks(engine)
            await call(learner_fn, ...)
        ...                                    # the check closes its own connections first
        found = await leaks.settle()           # how many the learner's code never gave back

    While the block runs, the pool's log is silenced too: a connection the garbage collector
    finds then is counted in `dropped` (and settle() counts it) instead of printed.
    """

    def __init__(self, engine: Any = None) -> None:
        from sqlalchemy.pool import Pool

        engine = getattr(engine, "sync_engine", engine)
        self._target = engine.pool if engine is not None else Pool
        self._out: dict[int, tuple[Any, Any, Any]] = {}  # record -> (record, weak proxy, driver)
        self._hush = _PoolLogHush()

    @property
    def dropped(self) -> int:
        """Connections the garbage collector found unreturned so far (SQLAlchemy then ends them)."""
        return self._hush.dropped

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self._out[id(record)] = (record, weakref.ref(proxy), getattr(record, "driver_connection", None))

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        self._out.pop(id(record), None)

    def __enter__(self) -> ConnectionLeaks:
        from sqlalchemy import event

        event.listen(self._target, "checkout", self._checkout)
        event.listen(self._target, "checkin", self._checkin)
        self._quiet = _quiet_pool_log(self._hush)
        self._quiet.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self._target, "checkout", self._checkout)
        event.remove(self._target, "checkin", self._checkin)
        self._quiet.__exit__(None, None, None)

    async def settle(self, held: bool = True) -> int:
        """Close every connection still out, quietly; return how many the code never gave back
        (those the garbage collector already found included: it detaches them, never checks
        them in). With held=False, only those the code dropped: a connection something still
        holds (the session a check lent the code) is left alone."""
        import gc
        import warnings

        from sqlalchemy.util import greenlet_spawn

        leaked = list(self._out.values())  # those the garbage collector detached are still here
        self._out.clear()
        with _quiet_pool_log(_PoolLogHush()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # one the learner dropped: SQLAlchemy terminates it now, not later. The young
            # generations hold what the call made; a full collection costs a quarter second
            gc.collect(1)
            if not held:
                leaked = [entry for entry in leaked if entry[1]() is None]
            for record, proxy, _ in leaked:
                fairy = proxy()
                if fairy is not None and getattr(fairy, "_connection_record", None) is record:
                    with contextlib.suppress(Exception):  # still held: close it, check it in
                        async with asyncio.timeout(5):
                            await greenlet_spawn(fairy.invalidate)
            for _, _, driver in leaked:  # aiosqlite: let its thread end while the loop runs
                thread = getattr(driver, "_thread", None)
                if thread is not None and thread.is_alive():
                    await asyncio.to_thread(thread.join, 5)
            for _ in range(3):
                await asyncio.sleep(0)  # the thread's last callback runs on this loop
        return len(leaked)


class _PoolLogHush(logging.Handler):
    """Takes what SQLAlchemy's pool logs while a check watches, counting the dropped connections."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "non-checked-in connection" in record.getMessage():
            self.dropped += 1


@contextlib.contextmanager
def _quiet_pool_log(hush: _PoolLogHush) -> Iterator[None]:
    """Route the pool's log (sqlalchemy.pool and its children) to `hush` alone, meanwhile."""
    log = logging.getLogger("sqlalchemy.pool")
    propagate = log.propagate
    log.addHandler(hush)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(hush)
        log.propagate = propagate


class LoopWatch:
    """From a thread of its own, while a check runs: the time this process lost to a busy
    machine (`lost`: the thread's own lateness, which a blocked event loop does not cause, since
    time.sleep, join and I/O release the GIL and Python code gives it up every few ms), and how
    long the learner's code was seen holding the loop's thread while `beat` was late (`held`).

        with LoopWatch(answer, beat) as watch:
            ...
        watch.lost, watch.held      # seconds
    """

    def __init__(self, answer: Any, beat: Heartbeat, step: float = 0.05, late: float = 0.5) -> None:
        self.lost = 0.0
        self.held = 0.0
        self._beat, self._step, self._late = beat, step, late
        self._witness = LoopWitness(answer)  # on the loop: knows its thread and the learner's code
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="course-loop-watch", daemon=True)

    def _watch(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self._step):
            now = time.perf_counter()
            late = max(now - last - self._step, 0.0)
            self.lost += late
            last = now
            loop_late = now - self._beat._last > self._late  # no tick for a while
            if loop_late and self._witness._learner_holds_loop():
                self.held += self._step + min(late, self._step)  # a late sample counts a little more

    def __enter__(self) -> LoopWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)
