"""Larger synthetic data shaped like Chinook, the same on every run.

Chinook has 2 240 invoice lines: too few to feel the difference between loading methods or
query plans. This module makes as many as you ask for, from a fixed seed, in memory (no file is
written), about a million lines in a few seconds:

    from course import synthetic

    rows = list(synthetic.invoice_lines(100_000))    # (invoice_line_id, invoice_id, track_id,
    rows[0]                                          #  unit_price, quantity)
    heads = list(synthetic.invoices(1_000))          # (invoice_id, customer_id, invoice_date, total)

Both come from one imaginary shop, a stream of invoices that each have 1 to 5 lines:

- track_id is one of Chinook's 3 503 tracks, and unit_price is that track's real price
  (Decimal('0.99'), or Decimal('1.99') for the video tracks);
- quantity is 1 (most lines), 2 or 3;
- customer_id is one of Chinook's 59 customers, and invoice dates advance from
  2026-01-01 by 1 to 240 minutes per invoice;
- an invoice's total is the sum of unit_price × quantity over its lines.

The same seed gives the same rows on every run and on every supported Python (3.11-3.13):
`random.Random(seed)` with `randrange` and `random()` is reproducible across versions. A
different seed gives another shop. `invoices(k)` describes the invoices that the lines of
`invoice_lines(n)` belong to, for the same seed and first ids, when k reaches the last line's
invoice_id; `invoice_lines(n)` stops after exactly n lines, possibly in the middle of an invoice.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

SEED = 2024
TRACKS = 3503                      # Chinook's track ids are 1..3503
CUSTOMERS = 59                     # and its customer ids 1..59
FIRST_DATE = datetime(2026, 1, 1)  # after Chinook's own invoices, which end in 2025

INVOICE_LINE_COLUMNS = ("invoice_line_id", "invoice_id", "track_id", "unit_price", "quantity")
INVOICE_COLUMNS = ("invoice_id", "customer_id", "invoice_date", "total")

AUDIO_PRICE = Decimal("0.99")
VIDEO_PRICE = Decimal("1.99")
# The Chinook tracks priced 1.99 (its videos), as inclusive ranges of track_id.
VIDEO_TRACKS = ((2819, 2925), (3165, 3224), (3226, 3252), (3337, 3348), (3360, 3364), (3428, 3429))

_PRICES = [AUDIO_PRICE] * (TRACKS + 1)  # index = track_id; index 0 is unused
for _low, _high in VIDEO_TRACKS:
    _PRICES[_low:_high + 1] = [VIDEO_PRICE] * (_high - _low + 1)

InvoiceLine = tuple[int, int, int, Decimal, int]
Invoice = tuple[int, int, datetime, Decimal]


def price_of(track_id: int) -> Decimal:
    """The Chinook unit price of a track: 0.99, or 1.99 for a video."""
    if not 1 <= track_id <= TRACKS:
        raise ValueError(f"track_id must be in 1..{TRACKS}, not {track_id}")
    return _PRICES[track_id]


def _orders(seed: int, first_invoice_id: int, first_line_id: int
            ) -> Iterator[tuple[Invoice, list[InvoiceLine]]]:
    """The endless stream of (invoice, its lines) that both public generators read."""
    rng = random.Random(seed)
    randrange, uniform = rng.randrange, rng.random
    prices = _PRICES
    line_id = first_line_id
    when = FIRST_DATE
    for invoice_id in itertools.count(first_invoice_id):
        customer_id = randrange(CUSTOMERS) + 1
        when += timedelta(minutes=randrange(240) + 1)
        lines = []
        total = Decimal(0)
        for _ in range(randrange(5) + 1):
            track_id = randrange(TRACKS) + 1
            u = uniform()
            quantity = 1 if u < 0.8 else 2 if u < 0.95 else 3
            price = prices[track_id]
            lines.append((line_id, invoice_id, track_id, price, quantity))
            total += price * quantity
            line_id += 1
        yield (invoice_id, customer_id, when, total), lines


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a whole number of rows, 0 or more, not {n!r}")


def invoice_lines(n: int, seed: int = SEED, *, first_id: int = 1,
                  first_invoice_id: int = 1) -> Iterator[InvoiceLine]:
    """Yield n invoice lines: (invoice_line_id, invoice_id, track_id, unit_price, quantity).

    invoice_line_id counts up from first_id, invoice_id from first_invoice_id (1 to 5 lines per
    invoice). The tuples have invoice_line's column order, ready for executemany or
    copy_records_to_table.
    """
    _check_count(n)
    if n == 0:
        return
    made = 0
    for _, lines in _orders(seed, first_invoice_id, first_id):
        for line in lines:
            yield line
            made += 1
            if made == n:
                return


def invoices(n: int, seed: int = SEED, *, first_id: int = 1) -> Iterator[Invoice]:
    """Yield n invoices: (invoice_id, customer_id, invoice_date, total), ids from first_id.

    The total is the sum of the invoice's lines, the ones invoice_lines() yields for the same
    seed (with first_invoice_id equal to this first_id).
    """
    _check_count(n)
    for invoice, _ in itertools.islice(_orders(seed, first_id, 1), n):
        yield invoice


def checksum(rows: Iterable[tuple]) -> str:
    """A short fingerprint of rows (their text form), to compare two loads or two runs."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row)).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:12]
