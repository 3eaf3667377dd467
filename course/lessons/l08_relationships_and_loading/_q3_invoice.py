"""q3: an invoice read with no lazy load at all (checked under raiseload)."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload

from course.checking.checks import Exercise, LearnerError, Wrong
from course.models import Invoice, InvoiceLine, Track

from ._common import (
    EMPTY_INVOICE_ID,
    INVOICE_ID,
    LIMIT,
    Recorder,
    in_session,
    on_both,
    raised_lazy,
    rows_differ,
    through_awaitable_attrs,
)


async def _expected_invoice(engine: AsyncEngine, invoice_id: int) -> Any:
    async with AsyncSession(engine) as session:
        invoice = await session.get(Invoice, invoice_id, options=[
            selectinload(Invoice.customer),
            selectinload(Invoice.lines).selectinload(InvoiceLine.track).selectinload(Track.album)])
        if invoice is None:
            return None
        return (f"{invoice.customer.first_name} {invoice.customer.last_name}",
                [(line.track.name, line.track.album.title if line.track.album else None, line.quantity)
                 for line in invoice.lines])


INVOICE_CASES = [1, 98, INVOICE_ID, EMPTY_INVOICE_ID, 412, 31337]
Q3_FIX = ("load everything with the query: `selectinload(Invoice.lines)` for the collection, "
          "chained with `.joinedload(InvoiceLine.track).joinedload(Track.album)` for each line's "
          "single track and album, and `joinedload(Invoice.customer)` for the single customer.")


async def _check_invoice_detail(invoice_detail) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for invoice_id in INVOICE_CASES:
            what = f"invoice_detail(session, {invoice_id})"
            got, seen = await in_session(engine, invoice_detail, invoice_id, what=what, fix=Q3_FIX,
                                         explain=partial(_explain_invoice_error, what),
                                         under_raiseload=True)
            if got is not None and not isinstance(got, tuple):
                raise Wrong(f"{what} should return a (customer name, lines) tuple, not "
                            f"{type(got).__name__}.")
            expected = await _expected_invoice(engine, invoice_id)
            if expected is None:
                if got is not None:
                    raise Wrong(f"{what}: there is no such invoice, so return None; you returned {got!r}.")
                continue
            if got is None:
                raise Wrong(f"{what} returned None, but invoice {invoice_id} exists"
                            + (" (it has no lines, and a join from the invoice to its lines "
                               "finds no row for it): return (customer name, []). None is for an id "
                               "with no invoice." if not expected[1] else
                               ": None is for an id with no invoice."))
            if seen.count > 5:
                raise Wrong(f"{what} ran {seen.count} statements for {len(expected[1])} lines: "
                            "one query per line is N+1, even written by hand. Five are enough "
                            "(invoice, customer, lines, tracks, albums): " + Q3_FIX)
            got = (got[0], [tuple(line) for line in got[1]]) if got and len(got) == 2 else got
            if got == expected:
                continue
            if got[0] != expected[0]:
                raise Wrong(f"{what}: the customer should read {expected[0]!r} (first name, "
                            f"space, last name); yours is {got[0]!r}.")
            if sorted(got[1], key=str) == sorted(expected[1], key=str):
                raise Wrong(f"{what} has the right lines in the wrong order: by invoice_line_id "
                            "(Invoice.lines is ordered that way already).")
            raise Wrong(rows_differ(what, got[1], expected[1], "line")
                        + " Each line is (track name, album title or None, quantity).")
        return (f"{len(INVOICE_CASES)} invoices read under raiseload('*'), no lazy load, a track "
                "without album, an invoice without lines and an unknown id included, on SQLite "
                "and PostgreSQL.")

    return await on_both("q3", body)


def _explain_invoice_error(what: str, exc: LearnerError, seen: Recorder) -> None:
    """The verdict on a lazy load, a missing invoice or a track without album (the error tells)."""
    relation = raised_lazy(exc)
    if relation and through_awaitable_attrs(exc.__cause__):
        raise Wrong(f"{what} awaited awaitable_attrs for {relation!r}: that is a lazy load too, "
                    "one more query per object, and the check runs your function under "
                    f"raiseload('*'), which refuses every lazy load. Instead, {Q3_FIX}") from None
    if relation:
        raise Wrong(f"{what} read {relation!r}, which your query had not loaded: a lazy load "
                    "(the check runs your function under raiseload('*'), so it fails at once "
                    f"instead of with MissingGreenlet). Instead, {Q3_FIX}") from None
    if "NoResultFound" in str(exc):
        raise Wrong(f"{what}: .one() fails when no invoice has that id. Return None then: "
                    "`await session.get(...)` or `.scalar_one_or_none()` gives None.") from None
    if "NoneType" in str(exc):
        raise Wrong(f"{what}: one track of the invoice has no album (Track.album is None), and "
                    "your code read its title anyway. Write None for its album title.") from None


q3 = Exercise(
    "q3", "invoice_detail", _check_invoice_detail, limit=LIMIT,
    hints=["Every relationship you read must come with the query: the check adds raiseload('*') "
           "to your statements, so any lazy load fails at once, awaitable_attrs included.",
           "Chain loader options along the path: selectinload for the collection, joinedload "
           "for a single parent: selectinload(Invoice.lines).joinedload(InvoiceLine.track)"
           ".joinedload(Track.album); and joinedload(Invoice.customer).",
           "`invoice = await session.get(Invoice, invoice_id, options=[...])`; None when absent. "
           "Some tracks have no album: write None for the title then."],
    title="An invoice with no lazy load",
)
