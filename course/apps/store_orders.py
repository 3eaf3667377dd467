"""The tables the capstone of lesson 11 adds to Chinook: stock, orders and order lines.

Chinook sells tracks but keeps no stock and no orders of its own (its invoices are history).
The capstone's store needs three more tables; `prepare_store(url)` creates them on a course
database and gives every track a stock, the same on every run:

    stock(track_id PRIMARY KEY -> track, quantity >= 0)
    store_order(order_id PRIMARY KEY, customer_id -> customer, idempotency_key UNIQUE, total)
    store_order_line(order_id -> store_order, line_no, track_id -> track, quantity, unit_price)

In a real project a migration (Alembic) would create them once. The tables are Core `Table`
objects on their own MetaData, so importing this module changes nothing in course.models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    insert,
    select,
)

from course.models import Track

metadata = MetaData()

stock = Table(
    "stock", metadata,
    Column("track_id", Integer, ForeignKey(Track.track_id), primary_key=True),
    Column("quantity", Integer, CheckConstraint("quantity >= 0", name="stock_not_negative"),
           nullable=False),
)

store_order = Table(
    "store_order", metadata,
    Column("order_id", Integer, primary_key=True),
    Column("customer_id", Integer, nullable=False),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("total", Numeric(10, 2), nullable=False),
)

store_order_line = Table(
    "store_order_line", metadata,
    Column("order_id", Integer, ForeignKey("store_order.order_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("track_id", Integer, ForeignKey(Track.track_id), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(10, 2), nullable=False),
)


def initial_stock(track_id: int) -> int:
    """Every track's stock at the start: 0 to 6, fixed by its id (one track in 7 is sold out)."""
    return (track_id * 5) % 7


async def prepare_store(url: Any) -> None:
    """Create the store's tables on the database at `url` and stock every track."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            ids = (await conn.scalars(select(Track.track_id).order_by(Track.track_id))).all()
            await conn.execute(insert(stock), [{"track_id": i, "quantity": initial_stock(i)}
                                               for i in ids])
    finally:
        await engine.dispose()
