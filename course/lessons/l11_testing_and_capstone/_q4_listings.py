"""q4, the capstone: the hidden suite in order, and its tests of GET /orders and GET /tracks."""

from __future__ import annotations

import random
from typing import Any

from course.checking.backends import backend_name
from course.checking.checks import LearnerError, Wrong
from course.db.engines import Backend
from course.probes import HOSTILE_INPUTS

from ._q3_store_tests import OVERDRAWN, _stock_overdrawn
from ._q4_orders import _OrderSteps
from ._q4_suite import _lines_as_sent, _prices, _short


class _Suite(_OrderSteps):
    """The whole hidden suite: the tests of POST /orders, then of the pages and searches."""

    async def run(self) -> list[str]:
        """Run every hidden test in turn; return what each one checked."""
        try:
            return await self._run()
        except LearnerError as exc:
            if _stock_overdrawn(exc):
                raise Wrong("an order failed with IntegrityError from the stock_not_negative "
                            f"CHECK constraint (a 500), {self.where()}: your route wrote a stock "
                            f"below 0, so it {OVERDRAWN}") from None
            raise

    async def _run(self) -> list[str]:
        """The hidden tests, in order."""
        self.prices = await _prices(self.observer)
        self.stock0, self.orders0, _ = await self.state()
        self.in_stock = sorted(t for t, q in self.stock0.items() if q >= 3)
        self.sold_out = sorted(t for t, q in self.stock0.items() if q == 0)
        self.rng = random.Random(11)
        await self.first_order()
        await self.retried_key()
        await self.identical_burst()
        await self.refused_lines()
        await self.last_copies()
        await self.retries_for_the_last_copy()
        await self.track_on_two_lines()
        await self.exact_money()
        await self.cancelled_request()
        await self.pages_of_orders()
        await self.search()
        return self.done

    async def shuffle_natural_order(self) -> None:
        """PostgreSQL: rewrite the first orders, so that a table scan returns them last and a
        page without ORDER BY differs from the wanted one (SQLite scans by order_id anyway)."""
        if self.backend != "postgresql":
            return
        from sqlalchemy import select, update

        from course.apps.store_orders import store_order

        async with self.observer.begin() as conn:
            first = (await conn.scalars(select(store_order.c.order_id)
                                        .order_by(store_order.c.order_id).limit(3))).all()
            await conn.execute(update(store_order).where(store_order.c.order_id.in_(first))
                               .values(customer_id=store_order.c.customer_id))

    async def pages_of_orders(self) -> None:
        """Pages of orders, with their lines as sent, in a fixed number of statements."""
        from course.probes import StatementCounter

        in_stock = self.in_stock
        for n in range(12):
            lines = [(in_stock[-1 - n], 1), (in_stock[-20 - n], 1)]
            response = await self.order(lines)
            if response.status_code != 201:
                raise Wrong(f"POST /orders answered {response.status_code} {_short(response)}; "
                            "expected 201.")
        await self.shuffle_natural_order()
        _, orders, _ = await self.state()
        everything: list[dict] = []
        counts = []
        offset = 0
        while True:
            with StatementCounter(self.engines[0]) as counter:
                response = await self.send("GET", "/orders", params={"limit": 5, "offset": offset})
            if response.status_code != 200:
                raise Wrong(f"GET /orders?limit=5&offset={offset} answered {response.status_code} "
                            f"{_short(response)}.")
            page = response.json()
            counts.append(counter.count)
            if not isinstance(page, list) or len(page) > 5:
                raise Wrong(f"GET /orders?limit=5&offset={offset} returned {str(page)[:100]}; "
                            "expected a list of at most 5 orders.")
            everything += page
            if len(page) < 5 or offset > 5 * orders:
                break
            offset += 5
        order_ids = [o.get("order_id") if isinstance(o, dict) else o for o in everything]
        try:
            in_order = order_ids == sorted(set(order_ids))
        except TypeError:
            in_order = False
        if not in_order or len(order_ids) != orders:
            raise Wrong(f"GET /orders page after page gave the ids {order_ids[:20]}; expected "
                        f"each of the {orders} orders once, ordered by order_id: "
                        "`.order_by(store_order.c.order_id).limit(limit).offset(offset)` (without "
                        "ORDER BY a database returns rows in whatever order it finds them).")
        if not all(isinstance(o.get("lines"), list) and o["lines"] for o in everything):
            raise Wrong("GET /orders returned orders without their lines.")
        for order in everything:
            sent = self.sent.get(order.get("order_id"))
            if sent is not None:
                _lines_as_sent("GET /orders", order, sent)
        if max(counts) > 3:
            raise Wrong(f"GET /orders?limit=5 ran up to {max(counts)} SQL statements for one "
                        "page: one query per order is N+1. Load the page's lines in one query "
                        "(`WHERE order_id IN (...)`, or selectinload).")
        for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
            response = await self.send("GET", "/orders", params=params)
            if response.status_code != 422:
                raise Wrong(f"GET /orders with {params} answered {response.status_code}; "
                            "expected 422 (limit between 1 and 100, offset from 0).")
        self.done.append(f"{len(order_ids)} orders paged, at most {max(counts)} statements a "
                         "page (3 allowed)")

    async def search(self) -> None:
        """Search: hostile strings stay data, pages follow each other, no N+1."""
        from sqlalchemy import select

        from course.apps.store_orders import initial_stock, stock
        from course.models import Track
        from course.probes import StatementCounter

        async with self.observer.connect() as conn:
            rows = (await conn.execute(select(Track.track_id, Track.name, stock.c.quantity)
                                       .join(stock, stock.c.track_id == Track.track_id)
                                       .order_by(Track.track_id))).all()
        for q in ("love", "LOVE", *HOSTILE_INPUTS, "100%", "_"):
            expected_ids = [r.track_id for r in rows if q.lower() in r.name.lower()][:100]
            with StatementCounter(self.engines[0]) as counter:
                try:
                    response = await self.send("GET", "/tracks", params={"q": q, "limit": 100})
                except LearnerError as exc:
                    from sqlalchemy.exc import DBAPIError

                    if not isinstance(exc.__cause__, DBAPIError):
                        raise
                    raise Wrong(f"GET /tracks?q={q!r} failed in the database with "
                                f"{type(exc.__cause__).__name__} (a 500): the search text "
                                "became part of the SQL, so its quote or wildcard changed the "
                                "statement. Bind q as a parameter, never an f-string: "
                                "`Track.name.icontains(q, autoescape=True)`.") from None
            if response.status_code != 200:
                raise Wrong(f"GET /tracks?q={q!r} answered {response.status_code} "
                            f"{_short(response)}.")
            got = response.json()
            got_ids = [t.get("track_id") for t in got] if isinstance(got, list) else got
            if got_ids != expected_ids:
                raise Wrong(_search_wrong(q, got, expected_ids, self.backend))
            if counter.count > 2:
                raise Wrong(f"GET /tracks?q={q!r} ran {counter.count} statements: join stock in "
                            "the same query.")
        stocks = {r.track_id: r.quantity for r in rows}
        first = (await self.send("GET", "/tracks", params={"q": "a", "limit": 7})).json()
        second = (await self.send("GET", "/tracks",
                                  params={"q": "a", "limit": 7, "offset": 7})).json()
        want_ids = [r.track_id for r in rows if "a" in r.name.lower()][:14]
        if [t.get("track_id") for t in first + second] != want_ids:
            raise Wrong("GET /tracks?q=a&limit=7 and then &offset=7 did not give the first 14 "
                        "matches in track_id order.")
        for t in first + second:
            if t.get("stock") != stocks[t["track_id"]]:
                raise Wrong(f"GET /tracks: track {t['track_id']} shows stock {t.get('stock')}; "
                            f"the stock table says {stocks[t['track_id']]}.")
        if self.stock0.get(1) != initial_stock(1):
            raise Wrong("the stock table did not start as prepare_store left it.")
        self.done.append(f"{len(HOSTILE_INPUTS) + 4} searches, hostile strings kept as data")


def _search_wrong(q: str, got: Any, expected_ids: list, backend: Backend) -> str:
    """What GET /tracks?q= gave against what it should have, with the causes the data shows."""
    on = backend_name(backend)
    if not isinstance(got, list):
        return f"GET /tracks?q={q!r} returned {str(got)[:80]}; expected a list of tracks."
    seen = (f"GET /tracks?q={q!r} gave {len(got)} tracks on {on}; {len(expected_ids)} track "
            "names contain it (ignoring case, every character literal, ordered by track_id)")
    names = [t.get("name", "") for t in got if isinstance(t, dict)]
    if len(got) > len(expected_ids) and ("%" in q or "_" in q):
        return (f"{seen}: % and _ are LIKE wildcards, and the extra names do not hold {q!r} "
                "itself: q likely reached LIKE unescaped. `Track.name.icontains(q, "
                "autoescape=True)` escapes them.")
    if len(got) < len(expected_ids) and all(q in name for name in names):
        return (f"{seen}, and every name returned holds {q!r} in exactly that case: a "
                "case-sensitive search (`contains`, or LIKE on PostgreSQL; SQLite's LIKE ignores "
                "the case of ASCII letters, PostgreSQL's does not). `Track.name.icontains(q, "
                "autoescape=True)`.")
    if len(got) > len(expected_ids) and "'" in q:
        return (f"{seen}: the quote in q likely changed the statement, so the text became SQL. "
                "Bind it as data: `Track.name.icontains(q, autoescape=True)`.")
    return (f"{seen}: the ids were {[t.get('track_id') for t in got if isinstance(t, dict)][:8]}"
            f", expected {expected_ids[:8]}. `Track.name.icontains(q, autoescape=True)`, ordered "
            "by track_id.")
