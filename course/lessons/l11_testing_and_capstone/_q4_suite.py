"""q4, the capstone: the hidden suite's data and the requests it sends."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from course.checking.checks import Wrong, call
from course.checking.races import money
from course.db.engines import Backend

from ._q4_probes import (
    _Connections,
    _exact,
    _FloatMoney,
    _line_tracks,
    _lines_of,
    _Receipts,
    _StockRace,
    _store_state,
)


def _short(response: Any) -> str:
    text = response.text
    return text if len(text) <= 100 else text[:97] + "..."


class _Instance:
    """One running copy of the learner's app: its client and the engine its lifespan made."""

    def __init__(self, client: Any, engine: Any) -> None:
        self.client, self.engine = client, engine
        self.app: Any = None
        self.mine: list = []  # the engines its /_check/state route saw


async def _prices(engine: Any) -> dict[int, Decimal]:
    from sqlalchemy import select

    from course.models import Track

    async with engine.connect() as conn:
        return {i: Decimal(str(p)) for i, p in (await conn.execute(
            select(Track.track_id, Track.unit_price))).all()}


def _expected_order(order_id: Any, customer: int, lines: list[tuple[int, int]],
                    prices: dict[int, Decimal]) -> dict:
    total = sum((prices[t] * q for t, q in lines), Decimal(0))
    return {"order_id": order_id, "customer_id": customer, "total": money(total),
            "lines": [{"track_id": t, "quantity": q, "unit_price": money(prices[t])}
                      for t, q in lines]}


def _normal(order: Any) -> Any:
    """An order's JSON with its money written as 2-decimal strings, to compare."""
    if not isinstance(order, dict):
        return order
    out = dict(order)
    if "total" in out:
        out["total"] = money(out["total"]) if out["total"] is not None else None
    if isinstance(out.get("lines"), list):
        out["lines"] = [{**line, "unit_price": money(line["unit_price"])}
                        if isinstance(line, dict) and line.get("unit_price") is not None else line
                        for line in out["lines"]]
    return out


def _same_line_order(route: str, order: Any, lines: list[tuple[int, int]]) -> None:
    got = _line_tracks(order)
    sent = [t for t, _ in lines]
    if isinstance(got, list) and sorted(got, key=str) == sorted(sent) and got != sent:
        raise Wrong(f"an order sent with its lines for tracks {sent} (in that order) came back "
                    f"from {route} with them in the order {got}: give the lines back in the "
                    "order given. Store each line's position (`line_no`) and "
                    "`ORDER BY order_id, line_no` when you read them.")


def _lines_as_sent(route: str, order: Any, lines: list[tuple[int, int]]) -> None:
    """The lines read back must be the lines sent: one each, in the order given."""
    _same_line_order(route, order, lines)
    got = _lines_of(order)
    if got is None or got == list(lines):
        return
    if len(got) < len(lines):
        seen = f"{len(got)} line(s) instead of {len(lines)}"
    elif len(got) > len(lines):
        seen = f"{len(got)} lines instead of {len(lines)}"
    else:
        seen = "other lines"
    raise Wrong(f"an order sent with the lines {lines} (track, quantity) came back from {route} "
                f"with {seen}: {got}. Give back each line as it was sent: one store_order_line "
                "per line (`line_no` 1, 2, ...), even when a track is on two lines, never "
                "merged or keyed by track, read with `ORDER BY order_id, line_no`.")


def _exact_total(route: str, order: Any, lines: list[tuple[int, int]],
                 prices: dict[int, Decimal]) -> None:
    if not isinstance(order, dict) or "total" not in order:
        return
    total = sum((prices[t] * q for t, q in lines), Decimal(0))
    got = _exact(order["total"])
    if got is not None and got != total:
        shown = " + ".join(f"{q} x {prices[t]}" for t, q in lines)
        raise Wrong(f"{route} with {shown} answered total {order['total']!r}; the exact sum is "
                    f"{total}. Floats cannot hold most cents exactly: add Decimal prices "
                    "(`unit_price * quantity` with the Decimal the Numeric column gives), "
                    "never float().")


class _SuiteBase:
    """The hidden suite, on one database: two instances of the app, a connection of the
    check's own (`observer`) to look at the database, and the probes around them."""

    # The store as the check found it, read by _Suite._run before the first test.
    prices: dict[int, Decimal]
    stock0: dict[int, int]
    orders0: int
    in_stock: list[int]
    sold_out: list[int]
    rng: random.Random

    def __init__(self, instances: list[_Instance], observer: Any, receipts: _Receipts,
                 connections: _Connections, floats: _FloatMoney, backend: Backend) -> None:
        self.instances, self.observer, self.receipts = instances, observer, receipts
        self.connections, self.floats, self.backend = connections, floats, backend
        self.engines = [i.engine for i in instances]
        self.keys = 0
        self.sent: dict[Any, list[tuple[int, int]]] = {}  # order_id -> the lines sent
        self.done: list[str] = []

    def key(self) -> str:
        self.keys += 1
        return f"check-{self.keys}-O'Hara; DROP TABLE stock"

    async def send(self, method: str, path: str, instance: int = 0, **kwargs: Any) -> Any:
        return await call(self.instances[instance].client.request, method, path, **kwargs)

    async def order(self, lines: list[tuple[int, int]], key: str | None = None,
                    customer: int = 7, instance: int = 0) -> Any:
        response = await self.send("POST", "/orders", instance=instance,
                                   headers={"Idempotency-Key": key or self.key()},
                                   json={"customer_id": customer,
                                         "lines": [{"track_id": t, "quantity": q}
                                                   for t, q in lines]})
        if response.status_code == 201:
            body = response.json()
            if isinstance(body, dict):
                self.sent[body.get("order_id")] = list(lines)
        return response

    async def state(self) -> tuple[dict[int, int], int, int]:
        return await _store_state(self.observer)

    def race(self, requests: int) -> _StockRace:
        return _StockRace(self.engines, requests,
                          self.observer if self.backend == "postgresql" else None)

    def no_float_money(self) -> None:
        if self.floats.seen:
            where, value = self.floats.seen[0]
            raise Wrong(f"your code wrote {where} as the float {value!r}: floats cannot hold "
                        "most cents exactly, even rounded, and a sum of them drifts. Keep money "
                        "in Decimal from the Numeric column to the database (`unit_price * "
                        "quantity`, `sum(..., Decimal(0))`), never float() or round().")
