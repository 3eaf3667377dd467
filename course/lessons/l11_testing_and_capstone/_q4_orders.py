"""q4, the capstone: the hidden suite's tests of POST /orders."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from course.checking.backends import backend_name
from course.checking.checks import LearnerError, Wrong

from ._q3_store_tests import OVERDRAWN, _stock_overdrawn
from ._q4_suite import (
    _exact_total,
    _expected_order,
    _lines_as_sent,
    _normal,
    _same_line_order,
    _short,
    _SuiteBase,
)


class _OrderSteps(_SuiteBase):
    """The hidden tests of POST /orders."""

    async def first_order(self) -> None:
        """An order: its stock taken, its receipt sent off the loop, after the commit."""
        stock0, prices = self.stock0, self.prices
        a, b, c = self.rng.sample(self.in_stock, 3)
        # the lines are sent in descending track order; enough stock is left to take them again
        a, b = sorted(self.rng.sample([t for t in self.in_stock if stock0[t] >= 4 and t != c], 2),
                      reverse=True)
        self.a, self.b, self.c = a, b, c
        self.lines = lines = [(a, 2), (b, 1)]
        response = await self.order(lines, key="first-order")
        if response.status_code != 201:
            raise Wrong(f"POST /orders with 2 lines in stock answered {response.status_code} "
                        f"{_short(response)}; expected 201.")
        raw = response.json()
        _same_line_order("POST /orders", raw, lines)
        _exact_total("POST /orders", raw, lines, prices)
        body = _normal(raw)
        self.order_id = order_id = body.get("order_id") if isinstance(body, dict) else None
        self.want = want = _expected_order(order_id, 7, lines, prices)
        if body != want:
            raise Wrong(f"POST /orders returned {str(body)[:150]}; expected {str(want)[:150]} "
                        "(prices from the track table, lines in the order given, total = sum of "
                        "quantity x unit_price).")
        self.after, orders, _ = await self.state()
        after = self.after
        if (after[a], after[b]) != (stock0[a] - 2, stock0[b] - 1):
            raise Wrong(f"after an order of 2 x track {a} and 1 x track {b}, their stock went "
                        f"from {stock0[a]}, {stock0[b]} to {after[a]}, {after[b]}: take the "
                        "ordered quantities off `stock` in the same transaction as the order.")
        if orders != self.orders0 + 1:
            raise Wrong(f"one POST /orders stored {orders - self.orders0} orders.")
        if self.receipts.on_loop:
            raise Wrong("send_receipt ran on the event loop's own thread: while it waits, every "
                        "other request waits too. `await asyncio.to_thread(send_receipt, "
                        "order_id)`.")
        if self.receipts.calls != [order_id]:
            raise Wrong(f"after one order, send_receipt was called with {self.receipts.calls}; "
                        f"expected [{order_id}], once, after the commit.")
        if self.receipts.early:
            raise Wrong(f"when send_receipt({order_id}) was called, a connection of the check's "
                        f"did not see order {order_id} in store_order yet: it was not committed. "
                        "A receipt must never announce an order that can still be rolled back: "
                        "`await session.commit()` first, then send the receipt.")
        self.no_float_money()
        self.done.append("an order stored with its lines and prices, stock taken, receipt "
                         "sent after the commit")

    async def retried_key(self) -> None:
        """The same key again: the same order, nothing taken twice, no second receipt."""
        from sqlalchemy.exc import IntegrityError

        order_id, want = self.order_id, self.want
        try:
            replay = await self.order(self.lines, key="first-order", instance=1)
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong("POST /orders again with the same Idempotency-Key failed with "
                            "IntegrityError (a 500): the unique key refused the second order, "
                            "as it should, but nothing answered. Catch the IntegrityError of "
                            "the unique key, roll back, and answer 200 with the stored "
                            "order.") from None
            raise
        if replay.status_code not in (200, 201) or _normal(replay.json()) != want:
            raise Wrong(f"POST /orders again with the same Idempotency-Key answered "
                        f"{replay.status_code} {_short(replay)}; expected the first order again "
                        f"(order_id {order_id}), with 200.")
        if replay.status_code != 200:
            raise Wrong("a repeated Idempotency-Key returned the first order with 201 Created; "
                        "nothing was created, so answer 200 (set `response.status_code = 200`).")
        again, orders, _ = await self.state()
        if again != self.after or orders != self.orders0 + 1:
            raise Wrong("a repeated Idempotency-Key stored a second order or took stock again: "
                        "claim the key with the order's INSERT, and let the unique constraint "
                        "on idempotency_key refuse the second one.")
        if self.receipts.calls != [order_id]:
            raise Wrong("a repeated Idempotency-Key sent a second receipt.")
        found = await self.send("GET", f"/orders/{order_id}")
        if found.status_code == 200:
            _same_line_order(f"GET /orders/{order_id}", found.json(), self.lines)
        if found.status_code != 200 or _normal(found.json()) != want:
            raise Wrong(f"GET /orders/{order_id} answered {found.status_code} {_short(found)}; "
                        "expected the order as POST returned it.")
        missing = await self.send("GET", "/orders/999999")
        if missing.status_code != 404:
            raise Wrong(f"GET /orders/999999 answered {missing.status_code}; expected 404.")
        self.done.append("a retried key answered 200 with the same order")

    async def identical_burst(self) -> None:
        """Five identical requests at once, on two instances: one order."""
        from sqlalchemy.exc import IntegrityError

        race = ("Two requests can both miss the key when they look it up: catch the "
                "IntegrityError of the unique key, roll back, and return the order that won.")
        try:
            responses = await asyncio.gather(*(self.order([(self.c, 1)], key="burst",
                                                          instance=i % 2) for i in range(5)))
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong("5 identical requests with one Idempotency-Key at once: one of them "
                            f"failed with IntegrityError (a 500). {race}") from None
            raise
        codes = sorted(r.status_code for r in responses)
        ids = {r.json().get("order_id") for r in responses if r.status_code in (200, 201)}
        _, orders, _ = await self.state()
        if codes != [200, 200, 200, 200, 201] or len(ids) != 1 or orders != self.orders0 + 2:
            raise Wrong(f"5 identical requests with one Idempotency-Key at once answered "
                        f"{codes} and stored {orders - self.orders0 - 1} order(s); expected one "
                        f"201, four 200 with the same order, one order. {race}")
        self.done.append("5 concurrent retries made one order")

    async def refused_lines(self) -> None:
        """A failure midway: the third line is sold out / short / unknown; nothing may remain."""
        before, orders_before, lines_before = await self.state()
        receipts_before = len(self.receipts.calls)
        sold_out = self.sold_out
        d, e = self.rng.sample([t for t in self.in_stock if t not in (self.a, self.b, self.c)], 2)
        self.d, self.e = d, e
        for bad, expected, why in (
                ((sold_out[0], 1), 409, f"track {sold_out[0]} is sold out"),
                ((e, before[e] + 1), 409, f"track {e} has only {before[e]} in stock"),
                ((999_999, 1), 404, "track 999999 does not exist")):
            try:
                response = await self.order([(d, 1), (e, 1), bad])
            except LearnerError as exc:
                if expected == 409 and _stock_overdrawn(exc):
                    raise Wrong(f"an order whose third line is impossible ({why}) failed with "
                                "IntegrityError from the stock_not_negative CHECK constraint "
                                f"(a 500): your route wrote a stock below 0, so it {OVERDRAWN}"
                                ) from None
                raise
            state = await self.state()
            if response.status_code != expected:
                raise Wrong(f"an order whose third line is impossible ({why}) answered "
                            f"{response.status_code} {_short(response)}; expected {expected}.")
            if state != (before, orders_before, lines_before):
                raise Wrong(f"an order whose third line is impossible ({why}) answered "
                            f"{response.status_code}, but left changes behind (stock taken by "
                            "the first lines, or an order row): check and write in one "
                            "transaction, and roll it back on the way out.")
        if len(self.receipts.calls) != receipts_before:
            raise Wrong("a refused order sent a receipt.")
        self.done.append("a refused line left nothing behind (409/404)")

    def where(self) -> str:
        return f"on {backend_name(self.backend)}, through two instances of your app on one database"

    async def last_copies(self) -> None:
        """The last copies of a track, five orders (five keys) at once, on two instances."""
        from sqlalchemy.exc import IntegrityError

        self.used = {self.a, self.b, self.c, self.d, self.e, *self.in_stock[-12:],
                     *self.in_stock[-31:-19]}
        state, _, _ = await self.state()
        last = next(t for t in sorted(state) if state[t] == 2 and t not in self.used)
        self.used.add(last)
        with self.race(5) as race:
            outcomes = await asyncio.gather(*(race.run(self.order([(last, 1)], instance=i % 2))
                                              for i in range(5)), return_exceptions=True)
        told = (f"five orders at once (five Idempotency-Keys) for 1 copy each of track {last}, "
                f"which had 2 in stock, {self.where()}")
        for outcome in outcomes:
            if isinstance(outcome, LearnerError) and isinstance(outcome.__cause__, IntegrityError):
                raise Wrong(f"{told}: one failed with IntegrityError (the stock_not_negative "
                            "constraint, a 500). Every request read the stock before any of them "
                            "took it, so all saw 2: a check made apart from the write is stale by "
                            "the time you write. Let the write check: `update(stock).where("
                            "stock.c.track_id == t, stock.c.quantity >= q)`, `rowcount == 1` or "
                            "409, in the order's transaction.")
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        codes = sorted(r.status_code for r in outcomes)
        state, _, _ = await self.state()
        if codes != [201, 201, 409, 409, 409] or state[last] != 0:
            raise Wrong(f"{told}, were answered {codes} and left a stock of {state[last]}; "
                        "expected two 201, three 409 and a stock of 0. The check held each "
                        "request at its first write until all had read; likely causes: the stock "
                        "read in one statement and written in another (each request writes what "
                        "it read), or orders serialised by a lock inside one app (an "
                        "asyncio.Lock reaches neither a second instance nor a second process). "
                        "Let the database judge: `update(stock).where(stock.c.track_id == t, "
                        "stock.c.quantity >= q)` and `rowcount == 1`, else 409.")
        self.done.append("5 orders at once for the last 2 copies: two 201, three 409")

    async def retries_for_the_last_copy(self) -> None:
        """Five retries of one key at once, for the last copy of a track: one order, four 200."""
        state, orders_before, _ = await self.state()
        last = next(t for t in sorted(state) if state[t] == 1 and t not in self.used)
        self.used.add(last)
        receipts_before = len(self.receipts.calls)
        with self.race(5) as race:
            outcomes = await asyncio.gather(*(race.run(self.order([(last, 1)], key="last-copy",
                                                                  instance=i % 2))
                                              for i in range(5)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        codes = sorted(r.status_code for r in outcomes)
        ids = {r.json().get("order_id") for r in outcomes if r.status_code in (200, 201)}
        state, orders, _ = await self.state()
        told = (f"five retries of one Idempotency-Key at once, for the last copy of track {last}, "
                f"{self.where()}, were answered {codes}, stored {orders - orders_before} "
                f"order(s) and left a stock of {state[last]}")
        if codes != [200, 200, 200, 200, 201] or len(ids) != 1 or orders != orders_before + 1:
            hint = ""
            if 409 in codes:
                hint = (" A retry answered 409: it took the stock before it claimed the key, "
                        "so it lost the copy to its own first request.")
            raise Wrong(f"{told}; expected one 201 and four 200 with the same order.{hint} Claim "
                        "the key first: INSERT the order (its unique idempotency_key) before "
                        "taking stock, in the same transaction; a retry's INSERT then waits for "
                        "the first request and fails with IntegrityError: roll back and answer "
                        "200 with the stored order.")
        if state[last] != 0 or len(self.receipts.calls) != receipts_before + 1:
            raise Wrong(f"{told}, and sent {len(self.receipts.calls) - receipts_before} "
                        "receipt(s); expected a stock of 0 and one receipt.")
        self.done.append("5 retries racing for the last copy: one 201, four 200")

    async def track_on_two_lines(self) -> None:
        """The same track on two lines: together they must be in stock, and both come back."""
        from sqlalchemy.exc import IntegrityError

        state0, orders_before, lines_before = await self.state()
        twice = next(t for t in self.in_stock if state0[t] == 4 and t not in self.used)
        self.used.add(twice)
        try:
            response = await self.order([(twice, 3), (twice, 3)])
        except LearnerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Wrong(f"an order with track {twice} on two lines, 3 + 3 copies, with 4 in "
                            "stock, failed with IntegrityError (a 500): each line was checked "
                            "against the stock as it was before the order, and the second one "
                            "overdrew it. Check each line against the stock left by the lines "
                            "before it: `update(stock).where(stock.c.track_id == t, "
                            "stock.c.quantity >= q)` and `rowcount == 1`, line by line.") from None
            raise
        if response.status_code != 409 or await self.state() != (state0, orders_before,
                                                                 lines_before):
            raise Wrong(f"an order with track {twice} on two lines, 3 + 3 copies, with 4 in "
                        f"stock, answered {response.status_code} {_short(response)}; expected "
                        "409 and nothing changed: the lines of one order take the same stock "
                        "together.")
        lines = [(twice, 2), (twice, 2)]
        response = await self.order(lines)
        state, _, _ = await self.state()
        if response.status_code != 201 or state[twice] != 0:
            raise Wrong(f"an order with track {twice} on two lines, 2 + 2 copies, with 4 in "
                        f"stock, answered {response.status_code} {_short(response)} and left a "
                        f"stock of {state[twice]}; expected 201 and a stock of 0.")
        _lines_as_sent("POST /orders", response.json(), lines)
        order_id = response.json().get("order_id")
        found = await self.send("GET", f"/orders/{order_id}", instance=1)
        if found.status_code != 200:
            raise Wrong(f"GET /orders/{order_id} answered {found.status_code} {_short(found)}; "
                        "expected 200.")
        _lines_as_sent(f"GET /orders/{order_id}", found.json(), lines)
        self.done.append("the same track on two lines counted together and read back as sent")

    async def exact_money(self) -> None:
        """3 x 0.99 + 3 x 1.99 is 8.94, which floats cannot add up to."""
        state, _, _ = await self.state()
        prices = self.prices
        video = next(t for t in self.in_stock if prices[t] == Decimal("1.99") and state[t] >= 3
                     and t not in self.used)
        audio = next(t for t in self.in_stock if prices[t] == Decimal("0.99") and state[t] >= 3
                     and t not in self.used and t < video)
        self.used |= {video, audio}
        money = [(video, 3), (audio, 3)]
        response = await self.order(money)
        if response.status_code != 201:
            raise Wrong(f"POST /orders with {money} answered {response.status_code} "
                        f"{_short(response)}; expected 201.")
        _exact_total("POST /orders", response.json(), money, prices)
        self.no_float_money()
        self.done.append("exact totals, in Decimal")

    async def cancelled_request(self) -> None:
        """A request cancelled at its first INSERT: nothing may remain, the connection returns."""
        from sqlalchemy import event

        before = await self.state()
        task: asyncio.Task | None = None
        seen_insert = False

        def cancel_on_insert(conn, cursor, statement, parameters, context, executemany) -> None:
            nonlocal seen_insert
            if (statement.lstrip().upper().startswith("INSERT") and task is not None
                    and not seen_insert):
                seen_insert = True
                task.cancel()

        for learner_engine in self.engines:
            event.listen(learner_engine.sync_engine, "before_cursor_execute", cancel_on_insert)
        try:
            task = asyncio.create_task(self.order([(self.d, 1), (self.e, 1)]))
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
            except (Wrong, LearnerError):
                pass
        finally:
            for learner_engine in self.engines:
                event.remove(learner_engine.sync_engine, "before_cursor_execute",
                             cancel_on_insert)
        if not seen_insert:
            return
        for _ in range(50):  # the cancelled request's clean-up may need a few loop turns
            if not self.connections.count():
                break
            await asyncio.sleep(0.02)
        if await self.state() != before:
            raise Wrong("a request cancelled at its first INSERT left changes behind: keep the "
                        "writes in one transaction that is only committed at the end.")
        left = self.connections.count()
        if left:
            raise Wrong(f"after a request was cancelled midway, {left} connection(s) stayed "
                        "checked out: use the session from the dependency (`async with "
                        "sessionmaker() as session: yield session`), which gives it back.")
        self.done.append("a cancelled request left nothing behind")
