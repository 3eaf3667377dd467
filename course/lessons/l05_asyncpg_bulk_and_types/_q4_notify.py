"""q4: LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
from typing import Any

import asyncpg

from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.checking.pg_copies import connected_copy

from ._common import _Spy

# Every wait of this check is counted in steps of the loop's own progress, not read off a clock:
# a stall of the machine delays one step, and never turns a right answer into a wrong one.
STEP = 0.1
WAIT = 3.0  # seconds of progress: generous, the notifications arrive within milliseconds
# After the n-th payload has reached the callback, the check sends one more notification each
# time the previous one has reached it, for as long as the code still listens. Code that waits
# for n returns, and stops listening, on the next turns of the loop, before one of them can
# arrive (each needs a round trip through the server); code that sleeps instead lets them come.
PINGS = 5
# The interrupted case sends one notification, then nothing for this long before it cancels:
# longer than any timeout per notification the check accepts (5 s, a common pick, is rejected).
PAUSE = 5.5


async def _progress(seconds: float, *waited: asyncio.Future[Any]) -> bool:
    """Wait until one of `waited` is done, for at most `seconds` of the loop's progress (in STEP
    steps: a stall of the machine costs one step). Return whether one is done."""
    for _ in range(round(seconds / STEP)):
        done, _ = await asyncio.wait(waited, timeout=STEP, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return True
    return any(w.done() for w in waited)


def _sleeping(task: asyncio.Task[Any]) -> bool:
    """Whether the task is suspended inside asyncio.sleep() (its own coroutines, not children)."""
    awaited: Any = task.get_coro()
    while awaited is not None:
        if getattr(awaited, "cr_code", None) is asyncio.sleep.__code__:
            return True
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return False


class _ListenerSpy(_Spy):
    """Sets `listening` once a real add_listener has completed, and counts the payloads that
    reach the learner's callbacks (through a wrapper of the same kind, sync or async)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self.listening = asyncio.Event()
        self.stopping = asyncio.Event()  # remove_listener was called
        self.arrived = asyncio.Event()   # a payload reached a callback (cleared by the sender)
        self.delivered = 0
        self.added: list[tuple[str, Any]] = []
        self.removed: list[tuple[str, Any]] = []
        self._wrappers: dict[Any, Any] = {}

    def _counted(self, callback: Any) -> Any:
        if not callable(callback):
            return callback  # asyncpg says what is wrong with it
        try:
            return self._wrappers.setdefault(callback, self._wrap(callback))
        except TypeError:  # an unhashable callable: counted, but never found again
            return self._wrap(callback)

    def _wrap(self, callback: Any) -> Any:
        def seen() -> None:
            self.delivered += 1
            self.arrived.set()

        if inspect.iscoroutinefunction(callback):
            async def counted_async(*args: Any) -> Any:
                seen()
                return await callback(*args)

            return counted_async

        def counted(*args: Any) -> Any:
            seen()
            return callback(*args)

        return counted

    def __getattr__(self, name: str) -> Any:
        if name == "add_listener":
            def add_listener(channel: str, callback: Any) -> Any:
                self.calls.append((name, (channel, callback), {}))

                async def add_listener() -> None:  # named so: a missing await names it
                    await self._conn.add_listener(channel, self._counted(callback))
                    self.added.append((channel, callback))
                    self.listening.set()

                return add_listener()

            return add_listener
        if name == "remove_listener":
            def remove_listener(channel: str, callback: Any) -> Any:
                self.calls.append((name, (channel, callback), {}))
                self.stopping.set()

                async def remove_listener() -> None:  # named so: a missing await names it
                    wrapper = self._wrappers.get(callback, callback) if _hashable(callback) else callback
                    await self._conn.remove_listener(channel, wrapper)
                    self.removed.append((channel, callback))

                return remove_listener()

            return remove_listener
        return super().__getattr__(name)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


async def _send_when_listening(spy: _ListenerSpy, sender: asyncpg.Connection, channel: str,
                               payloads: list[str], gaps: list[float] | None = None,
                               waiting: asyncio.Task[Any] | None = None) -> bool:
    """Send the payloads once the learner listens, after the given pause before each one. Then,
    while `waiting` runs and listens, ping: one more notification each time the previous one
    reached the callback, PINGS at most."""
    listening = asyncio.ensure_future(spy.listening.wait())
    try:
        if not await _progress(WAIT, listening, *([waiting] if waiting else [])) or not spy.listening.is_set():
            return False
    finally:
        listening.cancel()
    for position, payload in enumerate(payloads):
        if gaps and gaps[position]:
            await asyncio.sleep(gaps[position])
        await sender.execute("SELECT pg_notify($1, $2)", channel, payload)
    if waiting is None:
        return True
    stopping = asyncio.ensure_future(spy.stopping.wait())
    try:
        for ping in range(PINGS + 1):
            while spy.delivered < len(payloads) + ping:  # the previous one is still on its way
                spy.arrived.clear()
                arrived = asyncio.ensure_future(spy.arrived.wait())
                try:
                    await asyncio.wait({arrived, stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrived.cancel()
                if stopping.done() or waiting.done():
                    return True
            if ping < PINGS:
                await sender.execute("SELECT pg_notify($1, $2)", channel, f"ping {ping + 1}")
    finally:
        stopping.cancel()
    return True


def _slow_gaps() -> list[float]:
    """Pauses before each of the slow case's five notifications: irregular, under a second."""
    return [0.0, random.uniform(0.2, 0.4), random.uniform(0.6, 0.9), random.uniform(0.4, 0.6), 0.0]


async def _check_collect_notifications(collect_notifications) -> str:
    async with connected_copy("check_05_q4", 2) as (conn, sender):
        for channel, n in (("price_changes", 3), ("Price Changes", 2)):
            await _listen_case(conn, sender, collect_notifications, channel, n)
            await _not_listening(conn, channel, "returned")
        await _listen_case(conn, sender, collect_notifications, "slow lane", 4, slow=True)
        await _not_listening(conn, "slow lane", "returned")
        await _listen_case(conn, sender, collect_notifications, "none wanted", 0)
        await _not_listening(conn, "none wanted", "returned")
        await _interrupted_case(conn, sender, collect_notifications, "stock", 3)
        await _not_listening(conn, "stock", "was interrupted")
        return ("listened, collected exactly n payloads in order (an empty one, and ones "
                "that arrived slowly, included), returned once the n-th came (before a "
                "notification sent after it could arrive), waited through a pause of "
                f"{PAUSE:g} s "
                "without giving up, and stopped listening when interrupted.")


def _own_timeout(exc: LearnerError, what: str) -> Wrong | LearnerError:
    """A TimeoutError raised by the learner's own code (nobody cancelled it) while it waited."""
    if not isinstance(exc.__cause__, TimeoutError):
        return exc
    return Wrong(f"collect_notifications raised TimeoutError {what}: a timeout inside it (per "
                 "notification, or one of its own) gave up although more were coming. Wait "
                 "for all n with no timeout: the caller sets the deadline (asyncio.timeout "
                 "around the call).")


async def _listen_case(conn: asyncpg.Connection, sender: asyncpg.Connection,
                       collect_notifications, channel: str, n: int, slow: bool = False) -> None:
    """Send n + 1 notifications once the learner listens: at once, or (slow) with irregular
    pauses, an empty payload and one full of separators among them; then ping while it listens."""
    spy = _ListenerSpy(conn)
    payloads = [json.dumps({"track_id": i, "channel": channel}) for i in range(1, n + 2)]
    gaps = None
    if slow:
        payloads[1:3] = ["", 'a,b;c "quoted" \\ back\tslash']
        gaps = _slow_gaps()
    waiting = asyncio.ensure_future(call(collect_notifications, spy, channel, n))
    sending = asyncio.create_task(_send_when_listening(spy, sender, channel, payloads, gaps, waiting))
    asleep = False
    try:
        if await _progress(WAIT * 2, waiting, sending) and not waiting.done():
            asleep = _sleeping(waiting)  # the sender stopped first: the pings were all sent
            await _progress(WAIT * 2, waiting)
        finished = waiting.done()
    finally:
        if not sending.done():
            sending.cancel()
        if not waiting.done():
            waiting.cancel()
        await asyncio.gather(sending, waiting, return_exceptions=True)
    if not finished:
        if spy.count("add_listener") and not spy.added:
            raise Wrong("add_listener was called but never awaited, so nothing listens: put "
                        "`await` in front of conn.add_listener(...).")
        if not spy.count("add_listener"):
            raise Wrong("collect_notifications waited, but never called conn.add_listener(channel, "
                        "callback), so no notification could reach it.")
        if n == 0:
            raise Wrong(f"collect_notifications(conn, {channel!r}, 0) did not return within "
                        f"{WAIT * 2:g} s: with n = 0 there is nothing to wait for, so return []. "
                        "(A loop that awaits queue.get() before testing how many it has waits "
                        "for one too many.)")
        raise Wrong(f"collect_notifications did not return within {WAIT * 2:g} s although "
                    f"{spy.delivered} notifications reached your callback: does it put each "
                    "payload on the queue (queue.put_nowait(payload)), and do you await "
                    "queue.get() n times?")
    try:
        got = waiting.result()
    except LearnerError as exc:
        raise _own_timeout(exc, f"after {min(spy.delivered, n)} of {n} notifications"
                           + (" that came with pauses under a second" if slow else "")) from None
    if n and not spy.count("add_listener"):
        raise Wrong("collect_notifications never called conn.add_listener(channel, callback): "
                    "listen first, then wait for the payloads.")
    if not isinstance(got, list):
        raise Wrong(f"collect_notifications should return a list of payload strings, not "
                    f"{type(got).__name__}.")
    expected = payloads[:n]
    if got != expected:
        if "" in expected and got == [p for p in payloads if p][:n]:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r}: the empty "
                        "payload '' was dropped. A notification may carry an empty payload and "
                        "still counts: put every payload on the queue (`if payload:` tests "
                        "truthiness).")
        if slow and len(got) < n:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {len(got)} "
                        "payload(s) when the notifications came slowly (pauses under a second "
                        f"between them); expected {n}. Wait until "
                        "n have arrived, however long each takes: await queue.get() n times, "
                        "with no fixed sleep and no timeout per item (the caller sets the "
                        "deadline).")
        if len(got) != n:
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {len(got)} "
                        f"payloads; expected the first {n} of the {n + 1} sent. Await queue.get() "
                        "exactly n times.")
        raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r}; expected the "
                    f"payload strings as sent, in order: {expected!r}.")
    if n and spy.delivered >= len(payloads) + PINGS:
        raise Wrong(f"after the n-th notification had reached your callback, collect_notifications "
                    f"went on listening while {PINGS} more arrived, one after another"
                    + (", sleeping in asyncio.sleep()" if asleep else "") + ". Return as soon as "
                    "n payloads are in: await queue.get() n times, rather than sleeping a fixed "
                    "time or polling.")
    leftover = [added for added in spy.added if added not in spy.removed]
    if leftover:
        raise Wrong("your listener is still registered after collect_notifications returned, so "
                    "the connection keeps receiving (and your callback keeps running). Call "
                    "`await conn.remove_listener(channel, callback)` in a finally: block.")
    if conn.is_in_transaction():
        raise Wrong("collect_notifications left the connection inside a transaction; "
                    "notifications are delivered between transactions, so listen outside one.")


async def _not_listening(conn: asyncpg.Connection, channel: str, when: str) -> None:
    """The server side: the connection must no longer LISTEN on any channel."""
    channels = await conn.fetchval("SELECT array_agg(c) FROM pg_listening_channels() AS c")
    if channels:
        raise Wrong(f"after collect_notifications {when}, the connection still listens on "
                    f"{', '.join(repr(c) for c in channels)} (SELECT pg_listening_channels() "
                    "lists it), so the server keeps sending it notifications. Let add_listener "
                    "and remove_listener send LISTEN and UNLISTEN; don't run LISTEN yourself.")


async def _interrupted_case(conn: asyncpg.Connection, sender: asyncpg.Connection,
                            collect_notifications, channel: str, n: int) -> None:
    """Send one notification of the n awaited, pause PAUSE s (of the loop's progress), then
    cancel the call, as the caller's timeout would."""
    spy = _ListenerSpy(conn)
    waiting = asyncio.ensure_future(call(collect_notifications, spy, channel, n))
    stopping = asyncio.ensure_future(spy.stopping.wait())
    try:
        if not await _send_when_listening(spy, sender, channel, ["only one"]):
            if waiting.done():
                waiting.result()  # its error, if any, says more
            raise Wrong("collect_notifications never finished add_listener when called a third "
                        "time: put `await` in front of conn.add_listener(...).")
        await _progress(PAUSE, waiting, stopping)
        for _ in range(20):  # a timeout that fired at the pause's end gets its turns
            await asyncio.sleep(0)
        if stopping.done() and not waiting.done():  # it gave up by itself: let it finish
            await _progress(WAIT, waiting)
        if waiting.done():
            try:
                got = waiting.result()
            except LearnerError as exc:
                raise _own_timeout(exc, f"after 1 of {n} notifications, during a pause of "
                                   f"{PAUSE:g} s, before anything cancelled it") from None
            raise Wrong(f"collect_notifications(conn, {channel!r}, {n}) returned {got!r} after only "
                        f"one notification, during a pause of {PAUSE:g} s and before anything "
                        "cancelled it: a timeout inside it (per notification, or one of its own) "
                        f"gave up. Wait until all {n} have arrived; the caller sets the deadline.")
    finally:
        stopping.cancel()
        waiting.cancel()
        outcome = (await asyncio.gather(waiting, return_exceptions=True))[0]
    if isinstance(outcome, Wrong | LearnerError):
        raise outcome
    if not isinstance(outcome, asyncio.CancelledError):
        raise Wrong(f"cancelled after 1 of {n} notifications (as a timeout would), "
                    f"collect_notifications returned {outcome!r} instead of letting the "
                    "CancelledError through: the caller thinks all arrived. Stop listening in "
                    "`finally:`, and let the cancellation reach the caller (no `except "
                    "CancelledError`, or a bare `raise` in it).")
    leftover = [added for added in spy.added if added not in spy.removed]
    if leftover:
        raise Wrong(f"when the wait was interrupted (cancelled after 1 of {n} notifications, as a "
                    "timeout would), your listener stayed registered. Put `await "
                    "conn.remove_listener(channel, callback)` in a finally: block, so it runs even "
                    "when the waiting is interrupted.")


q4 = Exercise(
    "q4", "collect_notifications", _check_collect_notifications,
    limit=30.0,
    hints=["Make an `asyncio.Queue()`, and a plain callback `def on_notify(connection, pid, "
           "channel, payload): queue.put_nowait(payload)`.",
           "`await conn.add_listener(channel, on_notify)`, then `[await queue.get() for _ in "
           "range(n)]`.",
           "Wrap the waiting in try/finally, and in finally: `await conn.remove_listener(channel, "
           "on_notify)`, so the connection stops listening even on error or cancellation."],
    title="Collect notifications, then stop listening",
)
