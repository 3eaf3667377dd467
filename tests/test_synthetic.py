"""The synthetic data generator: deterministic, shaped like Chinook, in range."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest

from course import synthetic
from course.paths import ROOT

# Fingerprints of the default seed's output, the same on Python 3.11, 3.12 and 3.13. If one
# changes, every lesson that quotes synthetic data changes too: change the generator on purpose only.
FIRST_10_000_LINES = "f682c3248105"
FIRST_1_000_INVOICES = "7c4d6e8bf154"


def test_same_seed_same_rows_and_known_fingerprint() -> None:
    assert list(synthetic.invoice_lines(500)) == list(synthetic.invoice_lines(500))
    assert synthetic.checksum(synthetic.invoice_lines(10_000)) == FIRST_10_000_LINES
    assert synthetic.checksum(synthetic.invoices(1_000)) == FIRST_1_000_INVOICES
    assert list(synthetic.invoice_lines(3)) == [
        (1, 1, 1245, Decimal("0.99"), 1),
        (2, 1, 2964, Decimal("0.99"), 1),
        (3, 1, 2936, Decimal("0.99"), 1),
    ]


def test_another_seed_another_shop_and_prefixes_agree() -> None:
    assert list(synthetic.invoice_lines(100, seed=1)) != list(synthetic.invoice_lines(100))
    assert list(synthetic.invoice_lines(1_000))[:100] == list(synthetic.invoice_lines(100))


def test_shape_and_ranges() -> None:
    rows = list(synthetic.invoice_lines(20_000, first_id=101, first_invoice_id=7))
    assert len(rows) == 20_000
    assert all(len(row) == len(synthetic.INVOICE_LINE_COLUMNS) for row in rows)
    assert [row[0] for row in rows] == list(range(101, 20_101))
    invoice_ids = [row[1] for row in rows]
    assert invoice_ids[0] == 7 and invoice_ids == sorted(invoice_ids)
    assert set(invoice_ids) == set(range(7, invoice_ids[-1] + 1))  # no invoice without lines
    assert all(1 <= row[2] <= synthetic.TRACKS for row in rows)
    assert {row[3] for row in rows} == {Decimal("0.99"), Decimal("1.99")}
    assert {row[4] for row in rows} == {1, 2, 3}
    per_invoice = [invoice_ids.count(i) for i in range(7, invoice_ids[-1])]  # the last may be cut
    assert min(per_invoice) == 1 and max(per_invoice) == 5


def test_prices_are_chinooks_own() -> None:
    with open(ROOT / "datasets" / "chinook" / "track.csv", newline="", encoding="utf-8") as f:
        real = {int(r["track_id"]): Decimal(r["unit_price"]) for r in csv.DictReader(f)}
    assert len(real) == synthetic.TRACKS
    assert all(synthetic.price_of(track_id) == price for track_id, price in real.items())
    with pytest.raises(ValueError):
        synthetic.price_of(0)


def test_invoices_match_their_lines() -> None:
    lines = list(synthetic.invoice_lines(3_000, seed=7))
    last = lines[-1][1]
    heads = list(synthetic.invoices(last - 1, seed=7))  # the last invoice may be cut short
    totals: dict[int, Decimal] = {}
    for _, invoice_id, _, price, quantity in lines:
        totals[invoice_id] = totals.get(invoice_id, Decimal(0)) + price * quantity
    assert [(h[0], h[3]) for h in heads] == [(i, totals[i]) for i in range(1, last)]
    assert all(1 <= h[1] <= synthetic.CUSTOMERS for h in heads)
    dates = [h[2] for h in heads]
    assert dates == sorted(dates) and dates[0] > synthetic.FIRST_DATE


def test_edge_cases() -> None:
    assert list(synthetic.invoice_lines(0)) == []
    assert list(synthetic.invoices(0)) == []
    with pytest.raises(ValueError):
        list(synthetic.invoice_lines(-1))
