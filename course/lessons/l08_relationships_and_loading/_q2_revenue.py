"""q2: revenue per genre, as one aggregate query."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from course.checking.checks import Exercise, LearnerError, Wrong
from course.models import Genre, Invoice, InvoiceLine, Track

from ._common import (
    COUNTRY,
    LIMIT,
    TIE_GENRE,
    Recorder,
    fstring,
    in_session,
    on_both,
    pasted,
    rows_differ,
)


async def _expected_revenue(engine: AsyncEngine, country: str) -> list[tuple[Any, Decimal]]:
    revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    stmt = (select(Genre.name, revenue)
            .join(Track, Track.genre_id == Genre.genre_id)
            .join(InvoiceLine, InvoiceLine.track_id == Track.track_id)
            .join(Invoice, Invoice.invoice_id == InvoiceLine.invoice_id)
            .where(Invoice.billing_country == country)
            .group_by(Genre.genre_id, Genre.name)
            .order_by(revenue.desc(), Genre.name))
    async with AsyncSession(engine) as session:
        return [(name, Decimal(total)) for name, total in (await session.execute(stmt)).all()]


def _cents(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None


def _revenue_rows(got: Any, what: str) -> list[tuple[Any, Decimal | None]]:
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (genre, revenue) rows, not {type(got).__name__}.")
    try:
        pairs = [(name, total) for name, total in got]
    except (TypeError, ValueError):
        raise Wrong(f"{what} should return (genre, revenue) pairs; one item is {got[0]!r}.") from None
    for name, total in pairs:
        if not isinstance(total, Decimal):
            raise Wrong(f"{what} gives {name!r} a revenue of {total!r}, a {type(total).__name__}; "
                        "the exercise promises a Decimal, exact to the cent (a float is not, even "
                        "rounded). Keep what func.sum() over the Numeric columns returns, with "
                        "select(); text() on SQLite hands back floats.")
    return [(name, _cents(total)) for name, total in pairs]


COUNTRY_CASES = ["USA", COUNTRY, "Brazil", "x' OR '1'='1", "Atlantis", ""]
Q2_FIX = ("select(Genre.name, func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)) joined to "
          "Track, InvoiceLine and Invoice, with .group_by(Genre.genre_id, Genre.name)")


def _broken_by_quote(country: str, exc: LearnerError, seen: Recorder) -> None:
    """The verdict on a country whose quote broke the query: it was pasted into the SQL."""
    if pasted(seen, country) or "'" in country:
        raise Wrong(f"the quote in {country!r} broke your query ({exc}): the country was pasted "
                    "into the SQL. Bind it: `.where(Invoice.billing_country == country)`.") from None


async def _check_genre_revenue(genre_revenue) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        for country in COUNTRY_CASES:
            what = f"genre_revenue(session, {country!r})"
            got, seen = await in_session(engine, genre_revenue, country, what=what,
                                         fix="leave the objects alone and aggregate in SQL.",
                                         explain=partial(_broken_by_quote, country))
            if pasted(seen, country):
                raise fstring(country, "`.where(Invoice.billing_country == country)` binds it")
            if seen.count != 1:
                raise Wrong(f"{what} ran {seen.count} statements. A report is one aggregate "
                            "query: let the database join and sum, and fetch one row per genre: "
                            f"{Q2_FIX}.")
            if not re.search(r"\bGROUP\s+BY\b", seen.statements[0], re.IGNORECASE):
                raise Wrong(f"{what} fetched the invoice lines and added them up in Python. Let "
                            f"the database do it, and send back one row per genre: {Q2_FIX}.")
            rows = _revenue_rows(got, what)
            expected = [(name, _cents(total)) for name, total in await _expected_revenue(engine, country)]
            if rows == expected:
                continue
            if country == COUNTRY:
                _explain_revenue(what, rows, expected)
            if sorted(rows, key=str) == sorted(expected, key=str):
                if [total for _, total in rows] == [total for _, total in expected]:
                    raise Wrong(f"{what} breaks ties another way: genres with the same revenue "
                                "go by genre name (ORDER BY revenue DESC, Genre.name).")
                raise Wrong(f"{what} has the right totals in the wrong order: biggest revenue "
                            "first, then by genre name.")
            if sorted((name for name, _ in rows), key=str) == sorted((name for name, _ in expected), key=str):
                raise Wrong(_sums_differ(what, rows, expected))
            raise Wrong(rows_differ(what, rows, expected, "row"))
        return (f"one GROUP BY query per call; quantities, discounted prices, billing country and "
                f"the tie in {COUNTRY!r} right, on SQLite and PostgreSQL.")

    return await on_both("q2", body)


def _sums_differ(what: str, got: list, want: list) -> str:
    """The right genres with other sums: name the first sums that differ, and the fix."""
    wanted = dict(want)
    off = [(name, total, wanted[name]) for name, total in got if total != wanted[name]]
    shown = "; ".join(f"{name!r} {total}, expected {right}" for name, total, right in off[:3])
    return (f"{what} has the right genres, but the sums differ: {shown}"
            + (f", and {len(off) - 3} more" if len(off) > 3 else "") + ". A genre's revenue is "
            "the sum, over its invoice lines, of each line's `InvoiceLine.unit_price * "
            "InvoiceLine.quantity` (the price paid, times how many): "
            "`func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)`.")



# What the check's Bossa line (3 sold at 0.50, listed at 0.99) shows for each likely mistake.
TIE_MISTAKES = {
    "0.50": " for a line of 3 sold at 0.50: multiply by the quantity. Every Chinook line has "
            "quantity 1, so only new data shows it.",
    "0.99": ", the track's list price once, for a line of 3 sold at 0.50: sum each line's "
            "`InvoiceLine.unit_price * InvoiceLine.quantity`, the price paid times how many.",
    "2.97": ": that is the track's list price, but the line was sold at 0.50. Sum "
            "InvoiceLine.unit_price × quantity, the price paid.",
}


def _explain_revenue(what: str, rows: list, expected: list) -> None:
    """The check's invoice tells apart the mistakes that Chinook's own data hides."""
    got = dict(rows)
    if not rows:
        raise Wrong(f"{what} returned nothing, but one invoice is billed to {COUNTRY!r} (its "
                    "customer lives in Ireland): filter on Invoice.billing_country, not on the "
                    "customer's country.")
    tie = got.get(TIE_GENRE)
    if tie is not None and (mistake := TIE_MISTAKES.get(str(tie))):
        raise Wrong(f"{what} gives {TIE_GENRE!r} {tie}{mistake}")
    if sorted(rows, key=str) == sorted(expected, key=str):
        raise Wrong(f"{what} puts the tie in the wrong order: Rock and {TIE_GENRE!r} both made "
                    f"1.50 there, and ties go by genre name (ORDER BY revenue DESC, name).")


q2 = Exercise(
    "q2", "genre_revenue", _check_genre_revenue, limit=LIMIT,
    hints=["One query: join Genre → Track → InvoiceLine → Invoice, filter on the invoice's "
           "billing country, group by genre.",
           "The money of a line is `InvoiceLine.unit_price * InvoiceLine.quantity`; sum it with "
           "func.sum, and order by that sum descending, then by Genre.name.",
           "`revenue = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)`, then "
           "`(await session.execute(select(Genre.name, revenue).join(...)...)).all()`."],
    title="Revenue per genre, as one aggregate query",
)
