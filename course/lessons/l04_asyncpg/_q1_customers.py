"""q1: customers from a list of countries."""

from __future__ import annotations

import random

import asyncpg

from course.checking.checks import Exercise, LearnerError, Wrong, call
from course.checking.pg_copies import connected_copy
from course.probes import HOSTILE_INPUTS

from ._common import _logged, _quoted, _rows

CUSTOMERS_SQL = """
    SELECT customer_id, first_name, last_name, country
    FROM customer
    WHERE country = any($1::text[])
    ORDER BY country, last_name
"""

# A country whose name holds the separator a comma-joined list would be split at, and an
# empty name: both must stay one value each.
COMMA_COUNTRY = "Korea, Republic of"
MOVE_TO_COMMA_COUNTRY = "UPDATE customer SET country = $1 WHERE customer_id IN (23, 26)"
# Two customers whose country is empty (their ids in the opposite order to their last names),
# so that an empty name in the list has customers to match.
MOVE_TO_EMPTY_COUNTRY = "UPDATE customer SET country = '' WHERE customer_id IN (24, 27)"
COUNTRY_CASES = [["Norway", "Brazil", "Canada"], ["Portugal"], ["Canada", "India", "Canada"],
                 [COMMA_COUNTRY, "Norway", ""]]


async def _check_customers_in(customers_in) -> str:
    async with connected_copy("check_04_q1") as (conn,):
        await conn.execute(MOVE_TO_COMMA_COUNTRY, COMMA_COUNTRY)
        await conn.execute(MOVE_TO_EMPTY_COUNTRY)
        return await _customers_cases(conn, customers_in)


async def _customers_cases(conn: asyncpg.Connection, customers_in) -> str:
    texts: set[str] = set()
    every = [r[0] for r in await conn.fetch("SELECT DISTINCT country FROM customer ORDER BY 1")]
    for countries in [*COUNTRY_CASES, random.sample(every, random.randint(4, 8))]:
        got, queries = await _logged(conn, customers_in, list(countries))
        rows = _rows(got, f"customers_in(conn, [{_quoted(countries)}])")
        if any(country and country in q for q in queries for country in countries):
            raise Wrong("the country names are inside your SQL text: you built the query from "
                        "strings (f-string, + or join). Send them as one bound parameter: "
                        "`WHERE country = any($1::text[])`, then pass the list.")
        if len(queries) > 1:
            raise Wrong(f"customers_in ran {len(queries)} queries for {len(countries)} countries. "
                        "Ask once for the whole list: `WHERE country = any($1::text[])`.")
        texts.update(queries)
        expected = [tuple(r) for r in await conn.fetch(CUSTOMERS_SQL, countries)]
        _compare_customers(countries, rows, expected)
    if len(texts) > 1:
        raise Wrong("your SQL text changes with the number of countries (IN ($1, $2, ...) built "
                    "for each list), so PostgreSQL prepares a new statement every time. Use one "
                    "statement for any list: `WHERE country = any($1::text[])`.")
    for countries in ([], ["Atlantis"]):
        got = await call(customers_in, conn, countries)
        if _rows(got, f"customers_in(conn, {countries})") != []:
            raise Wrong(f"customers_in(conn, {countries}) should return an empty list.")
    hostile = [*HOSTILE_INPUTS, "Portugal"]
    try:
        got, queries = await _logged(conn, customers_in, hostile)
    except LearnerError as exc:
        raise Wrong(f"a country named {HOSTILE_INPUTS[1]!r} broke your query ({exc}). Values "
                    "must never become SQL text: bind the list as $1.") from None
    expected = [tuple(r) for r in await conn.fetch(CUSTOMERS_SQL, ["Portugal"])]
    in_text = [h for h in HOSTILE_INPUTS if len(h) > 1 and any(h in q for q in queries)]
    if in_text or _rows(got, "customers_in") != expected:
        raise Wrong(f"with hostile names such as {HOSTILE_INPUTS[0]!r} in the list, you returned "
                    f"{len(got)} rows instead of Portugal's {len(expected)}: the input changed "
                    "your SQL. Bind the list as one parameter, $1.")
    return "one statement for every list, and hostile names stay data."


def _compare_customers(countries: list[str], rows: list[tuple], expected: list[tuple]) -> None:
    call_text = f"customers_in(conn, [{_quoted(countries)}])"
    if rows == expected:
        return
    if rows and len(rows[0]) != 4:
        raise Wrong(f"each row should have 4 columns (customer_id, first_name, last_name, "
                    f"country); yours have {len(rows[0])}. Name the columns instead of SELECT *.")
    if sorted(rows) == sorted(expected):
        raise Wrong(f"{call_text} returned the right customers in the wrong order: ORDER BY "
                    "country, then last_name.")
    missing = {row[3] for row in expected} - {row[3] for row in rows}
    kept = [row for row in expected if row[3] not in missing]
    if "" in missing and missing <= {"", COMMA_COUNTRY} and sorted(rows) == sorted(kept):
        ids = ", ".join(str(row[0]) for row in expected if row[3] == "")
        both = f" and none of {COMMA_COUNTRY!r}" if COMMA_COUNTRY in missing else ""
        raise Wrong(f"{call_text} returned no customer of the empty country ''{both}, though "
                    f"customers {ids} have country = ''. An empty name is a value like any "
                    "other and must match: likely it was dropped before binding (`[c for c in "
                    "countries if c]`, `if country:`) or lost when the list was joined and "
                    "split. Pass the list as given: `WHERE country = any($1::text[])`.")
    if COMMA_COUNTRY in missing and missing <= {COMMA_COUNTRY} and sorted(rows) == sorted(kept):
        raise Wrong(f"{call_text} returned every customer but those of {COMMA_COUNTRY!r}, a "
                    "name with a comma in it: it was not matched as one value. That happens "
                    "when the list travels as one comma-joined string that SQL splits "
                    "(string_to_array). Bind the list itself: `WHERE country = any($1::text[])`, "
                    "with the Python list as the argument.")
    if len(set(countries)) < len(countries) and sorted(set(rows)) == sorted(expected):
        raise Wrong(f"{call_text} returned some customers twice: a country listed twice "
                    "matched twice (a JOIN with unnest($1) does that). Each customer comes once: "
                    "`WHERE country = any($1::text[])`.")
    raise Wrong(f"{call_text} returned {len(rows)} rows; expected {len(expected)}, the "
                f"customers of those countries. The first should be {expected[0]}.")


q1 = Exercise(
    "q1", "customers_in", _check_customers_in,
    hints=["Send the whole list as one parameter: asyncpg turns a Python list into a "
           "PostgreSQL array.",
           "`WHERE country = any($1::text[])` matches any element of the array $1; pass "
           "`countries` as the argument after the SQL.",
           "`return await conn.fetch(\"SELECT customer_id, first_name, last_name, country FROM "
           "customer WHERE country = any($1::text[]) ORDER BY country, last_name\", countries)`"],
    title="Customers from a list of countries",
)
