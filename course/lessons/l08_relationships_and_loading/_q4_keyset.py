"""q4: keyset pagination (a walk over every track, and pages after given keys)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from course.checking.checks import Exercise, LearnerError, Wrong
from course.models import Track

from ._common import LIMIT, Recorder, fstring, in_session, on_both, pasted


async def _expected_listing(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(Track.name, Track.track_id).order_by(Track.name, Track.track_id))
        return [tuple(row) for row in rows]


async def _expected_page(engine: AsyncEngine, after: Any, size: int) -> list[tuple[Any, ...]]:
    stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id).limit(size)
    if after is not None:
        stmt = stmt.where(tuple_(Track.name, Track.track_id) > tuple_(*after))
    async with AsyncSession(engine) as session:
        return [tuple(row) for row in await session.execute(stmt)]


COMPUTED = -1  # an OFFSET the database computes (a subquery, an expression)


def _offset_value(statement: str, parameters: Any) -> int | None:
    """The OFFSET a statement asked for, read from its text and its bound parameters: also
    SQLite's `LIMIT skip, size`; COMPUTED when the database works it out itself."""
    found = (re.search(r"\bOFFSET\s+(\S+)", statement, re.IGNORECASE)
             or re.search(r"\bLIMIT\s+([^\s,]+)\s*,", statement, re.IGNORECASE))
    if not found:
        return None
    mark = found[1].rstrip(")")
    numbered = re.fullmatch(r"\$(\d+)(::\w+)?", mark)
    try:
        if mark.isdigit():
            return int(mark)
        if mark == "?":
            return int(parameters[statement[: found.start(1)].count("?")])
        if numbered:
            return int(parameters[int(numbered[1]) - 1])
        if re.fullmatch(r"%\(\w+\)s|:\w+", mark):
            return int(parameters[mark.strip(":%()s")])
    except (IndexError, KeyError, TypeError, ValueError):
        return 1  # an OFFSET we cannot read: treat it as one
    return COMPUTED


PAGE_STARTS = [None, ("Intro", 900121), ("Let's Get It Up", 3), ("O'Brien", 900130), ("M", 0),
               ("x' OR '1'='1", 0)]


async def _page(tracks_page, engine: AsyncEngine, after: Any, size: int) -> tuple[list, Recorder]:
    what = f"tracks_page(session, {after!r}, {size})"
    def explain(exc: LearnerError, seen: Recorder) -> None:
        if after and ("'" in after[0] and "syntax" in str(exc).lower() or pasted(seen, after[0])):
            raise Wrong(f"{what} broke on the quote in {after[0]!r} ({exc}): the name was pasted "
                        "into the SQL. Bind it: `tuple_(Track.name, Track.track_id) > "
                        "tuple_(name, track_id)` or `Track.name > name`.") from None

    got, seen = await in_session(engine, tracks_page, after, size, what=what, fix="", explain=explain)
    if after and pasted(seen, after[0]):
        raise fstring(after[0], "compare columns with Python values in select()")
    if not isinstance(got, list):
        raise Wrong(f"{what} should return a list of (name, track_id) rows, not {type(got).__name__}.")
    try:
        rows = [(name, track_id) for name, track_id in got]
    except (TypeError, ValueError):
        raise Wrong(f"{what} should return (name, track_id) rows; one item is {got[0]!r}.") from None
    for statement, parameters in zip(seen.statements, seen.parameters, strict=True):
        offset = _offset_value(statement, parameters)
        if offset:
            sent = ("an OFFSET computed in the SQL itself (a subquery or an expression)"
                    if offset == COMPUTED else f"OFFSET {offset}")
            raise Wrong(f"{what} sent {sent}: the database reads and throws away every row "
                        "before the page to skip it, more for every page further on. Keyset "
                        "pagination starts after the last key instead: WHERE (name, track_id) > "
                        "(last name, last id) … LIMIT size.")
    if seen.count != 1:
        raise Wrong(f"{what} ran {seen.count} statements; one page is one query, WHERE … ORDER "
                    "BY … LIMIT.")
    if not re.search(r"\bLIMIT\b|\bFETCH\s+FIRST\b", seen.statements[0], re.IGNORECASE):
        raise Wrong(f"{what} fetched the whole table and cut the page in Python. Let the "
                    "database stop after `size` rows: `.limit(size)`.")
    return rows, seen


async def _check_tracks_page(tracks_page) -> str:
    async def body(engine: AsyncEngine, backend: str) -> str:
        listing = await _expected_listing(engine)
        # walk the whole listing, page by page
        after: Any = None
        walked, pages, seen_pages = [], 0, []
        while True:
            rows, _ = await _page(tracks_page, engine, after, 500)
            pages += 1
            seen_pages.append((after, rows))
            if not rows or pages > len(listing) // 500 + 2:
                break
            walked += rows
            after = rows[-1]
        if walked != listing:
            # one more page, after a key whose name other tracks share, tells the causes apart
            twin = _probe_key(walked, listing)
            rows, _ = await _page(tracks_page, engine, twin, 3)
            seen_pages.insert(0, (twin, rows))
            _explain_walk(walked, listing, seen_pages)
        for start in PAGE_STARTS:
            for size in (7, 1):
                rows, _ = await _page(tracks_page, engine, start, size)
                expected = await _expected_page(engine, start, size)
                if rows != expected:
                    raise Wrong(f"tracks_page(session, {start!r}, {size}) returned {rows}; expected "
                                f"{expected}: the next {size} row(s) after that key, in (name, "
                                "track_id) order.")
        return (f"{len(listing)} tracks walked in {pages} pages of 500, no OFFSET, one statement per "
                "page; names with quotes and tracks that share a name right, on SQLite and PostgreSQL.")

    return await on_both("q4", body)


def _probe_key(walked: list, listing: list) -> tuple[str, int]:
    """The key to ask one more page after: the first of the tracks that share the name of the
    first track the walk skipped, or else the first key whose name the next track shares."""
    given = set(walked)
    missing = next((key for key in listing if key not in given), None)
    if missing is not None:
        group = [key for key in listing if key[0] == missing[0]]
        if len(group) > 1:
            return group[0]
    return next(key for i, key in enumerate(listing[1:], 1) if listing[i - 1][0] == key[0])


def _explain_walk(walked: list, listing: list, pages: list[tuple[Any, list]]) -> None:
    if len(walked) > len(listing) or len(set(walked)) < len(walked):
        _explain_repeat(walked, listing, pages)
    missing = [key for key in listing if key not in set(walked)]
    if missing:
        twin = [key for key in listing if key[0] == missing[0][0]]
        if len(twin) > 1:
            probe = next((rows for after, rows in pages if after == twin[0]), [])
            let_through = next((row for row in probe if row[0] == twin[0][0]), None)
            if let_through is not None:
                raise Wrong(f"walking the pages skipped {missing[0]}, which shares its name with "
                            f"{len(twin) - 1} other track(s). Your WHERE lets same-named tracks "
                            f"through (the page after {twin[0]} gave {let_through}), so the skip "
                            "came from the order: tracks with the same name came back in no set "
                            "order, a page ended on one of them, and the next page started after "
                            "it. ORDER BY Track.name, Track.track_id: the whole key, as in the WHERE.")
            raise Wrong(f"walking the pages skipped {missing[0]}: it shares its name with "
                        f"{len(twin) - 1} other track(s), and the page after {twin[0]} gave none "
                        "of them. Compare the whole key, (name, track_id), not the name alone: "
                        "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
        raise Wrong(f"walking the pages skipped {missing[0]} and {len(missing) - 1} more: "
                    "order by (name, track_id) and start after the last key.")
    place = {key: i for i, key in enumerate(listing)}
    first, second = next((a, b) for a, b in zip(walked, walked[1:], strict=False) if place[a] > place[b])
    if first[0] == second[0]:
        raise Wrong(f"walking the pages gave every track, but {first} came before {second}: "
                    "tracks with the same name came back in no set order. ORDER BY Track.name, "
                    "Track.track_id, the same key that starts the next page.")
    raise Wrong(f"walking the pages gave every track, but not in (name, track_id) order ({first} "
                f"came before {second}): ORDER BY Track.name, Track.track_id, the same key that "
                "starts the next page.")


def _explain_repeat(walked: list, listing: list, pages: list[tuple[Any, list]]) -> None:
    """Say what the pages that came back showed: the last key itself again (>= for >), or a
    same-named track with a smaller id (a key without track_id)."""
    place = {key: i for i, key in enumerate(listing)}
    for after, rows in pages:
        known = [row for row in rows if row in place]
        for first, second in zip(known, known[1:], strict=False):
            if place[first] > place[second] and first[0] == second[0]:
                raise Wrong(f"walking the pages repeated tracks, and the page after {after} "
                            f"listed {first} before {second}: tracks with the same name came "
                            "back in no set order, so a page could end on one of them and the "
                            "next page start before another it had already given. ORDER BY "
                            "Track.name, Track.track_id: the whole key, as in the WHERE.")
            if place[first] > place[second]:
                raise Wrong(f"walking the pages repeated tracks, and the page after {after} "
                            f"listed {first} before {second}: not in (name, track_id) order. "
                            "ORDER BY Track.name, Track.track_id.")
    for after, rows in pages:
        if after is None or after not in place:
            continue
        back = [row for row in rows if row in place and place[row] < place[after] and row[0] != after[0]]
        if back:
            raise Wrong(f"walking the pages repeated tracks: the page after {after} came back to "
                        f"{back[0]}, whose name sorts before {after[0]!r}. The WHERE let through "
                        "tracks that come before the key in (name, track_id) order; likely it "
                        "compares track_id alone. Compare the whole key: "
                        "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
    itself = None
    for after, rows in pages:
        if after is None or after not in place:
            continue
        for row in rows:
            if row not in place or place[row] > place[after]:
                continue
            if row[0] == after[0] and row != after:
                raise Wrong(f"walking the pages repeated tracks: the page after {after} came back "
                            f"to {row}, a track with the same name and a smaller track_id, so the "
                            "comparison looked at the name alone. Compare the whole key, strictly after it: "
                            "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
            if row == after and itself is None:
                itself = after
    if itself is not None:
        raise Wrong(f"walking the pages repeated tracks: the page after {itself} began with that "
                    "key itself. Start strictly after the last key (>, not >=): "
                    "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")
    repeated = next(key for i, key in enumerate(walked) if key in walked[:i])
    raise Wrong(f"walking the pages repeated {repeated}: some page went back to rows an earlier "
                "page had given. Order by (name, track_id) and start strictly after the last key: "
                "`tuple_(Track.name, Track.track_id) > tuple_(*after)`.")


q4 = Exercise(
    "q4", "tracks_page", _check_tracks_page, limit=LIMIT,
    hints=["Sort by (name, track_id): the id breaks ties between tracks with the same name, so "
           "every track has one place in the listing.",
           "The next page starts after the last key you returned: `tuple_(Track.name, "
           "Track.track_id) > tuple_(*after)`, without OFFSET.",
           "`stmt = select(Track.name, Track.track_id).order_by(Track.name, Track.track_id)"
           ".limit(size)`; add the WHERE only when `after` is not None; return "
           "`[tuple(r) for r in await session.execute(stmt)]`."],
    title="Keyset pagination",
)
