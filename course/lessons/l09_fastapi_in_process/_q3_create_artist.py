"""q3: POST /artists, and two requests racing for one name."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from course.checking.checks import Exercise, LearnerError, Wrong
from course.checking.races import RaceGate
from course.db.engines import BACKENDS, Backend
from course.probes import (
    HOSTILE_INPUTS,
    InjectedFailure,
)

from ._common import _database, _leaks, _mountable, _send, _served, _status


async def _stored(engine: Any, name: str) -> list[tuple[int, str, list[str]]]:
    """Artists whose name equals `name` ignoring case, with their album titles."""
    from sqlalchemy import func, select

    from course.models import Album, Artist

    async with engine.connect() as conn:
        artists = (await conn.execute(select(Artist.artist_id, Artist.name)
                                      .where(func.lower(Artist.name) == name.lower())
                                      .order_by(Artist.artist_id))).all()
        out = []
        for artist_id, stored in artists:
            titles = (await conn.scalars(select(Album.title).where(Album.artist_id == artist_id))).all()
            out.append((artist_id, stored, sorted(titles)))  # Python's order: no collation
    return out


@asynccontextmanager
async def _failing_album_insert(engine: Any) -> AsyncIterator[None]:
    """While active, every INSERT into album fails: a failure halfway through the request."""
    from sqlalchemy import event

    def fail(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ALBUM"):
            raise InjectedFailure("the check made the INSERT into album fail")

    event.listen(engine.sync_engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", fail)


async def _create(client: Any, body: dict) -> Any:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    what = f"POST /artists {body}"
    try:
        return await _send(client, "POST", "/artists", json=body)
    except LearnerError as exc:
        cause = exc.__cause__
        if isinstance(cause, DBAPIError) and not isinstance(cause, IntegrityError) \
                and "'" in str(body):
            raise Wrong(f"{what}: the database could not run your SQL ({exc}), and the request "
                        "holds a quote: a name or title is data, bind it (the ORM does; with "
                        "text(), use :name parameters), never paste it into SQL.") from None
        if isinstance(exc.__cause__, IntegrityError):
            raise Wrong(f"{what}: the database refused the name (its unique index ignores case) "
                        "and your route let IntegrityError out, a 500. Catch IntegrityError "
                        "where you commit and answer 409. Looking the name up first is no "
                        "substitute: the lookup compares differently from the index, and another "
                        "request can take the name between your lookup and your insert. The "
                        "database is the judge.") from None
        raise


class _RaceProbe(RaceGate):
    """Makes the race between two requests for one name certain instead of likely: the first
    INSERT INTO artist waits (up to 3 s) until the other request has sent its own, so any lookup
    that either request made before inserting was made before either insert."""

    def __init__(self, engine: Any, requests: int) -> None:
        super().__init__([engine], requests)
        self.arrived = 0

    def arrive(self, conn: Any, statement: str) -> bool:
        if not statement.lstrip().upper().startswith("INSERT INTO ARTIST"):
            return False
        self.arrived += 1
        return True

    def count(self) -> int:
        return self.arrived


async def _race(client: Any, engine: Any, name: str) -> None:
    """Two requests at once for one name, in two spellings: one 201, one 409, one row."""
    bodies = [{"name": name, "albums": ["Twin A"]}, {"name": name.upper(), "albums": ["Twin B"]}]
    with _RaceProbe(engine, len(bodies)):
        outcomes = await asyncio.gather(*(_create(client, body) for body in bodies),
                                        return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Wrong) and "IntegrityError" in str(outcome):
            raise Wrong(f"two requests for the same name at once ({name!r} and "
                        f"{name.upper()!r}): the database refused the second insert and your "
                        "route let IntegrityError out, a 500. If the route looks the name up "
                        "first, both lookups found it free: a lookup before the insert cannot "
                        "prevent this; the unique index decides. Insert, commit inside `try:`, "
                        "and answer 409 on IntegrityError.")
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    codes = sorted(response.status_code for response in outcomes)
    stored = await _stored(engine, name)
    if codes != [201, 409] or len(stored) != 1:
        raise Wrong(f"two requests at once for the same name ({name!r} and {name.upper()!r}) "
                    f"were answered {codes} and left {len(stored)} artist(s) of that name; "
                    "expected one 201, one 409 and one artist: the unique index decides, catch "
                    "IntegrityError on commit and answer 409.")


async def _check_create_artist_on(create_artist: Any, backend: Backend, seed: int) -> int:
    rng = random.Random(seed)
    url = await _database("check-09-q3" if backend == "sqlite" else "check_09_q3", backend)
    async with _served(url, [("/artists", "POST", create_artist, 201)]) as (client, engine):
        name = f"The Check Quartet {rng.randrange(10_000, 99_999)}"
        body = {"name": name, "albums": ["Side B", "Side A", "Side B", "100% O'Brien_"]}
        response = await _create(client, body)
        _status(response, 201, f"POST /artists {body}")
        got, stored = response.json(), await _stored(engine, name)
        if not stored:
            raise Wrong(f"POST /artists {body} answered 201, but no artist {name!r} is in the "
                        "database: `await session.commit()` before you return. Nothing is kept "
                        "otherwise: the session is closed after the request, and closing rolls "
                        "back.")
        artist_id, _, titles = stored[0]
        if got != {"artist_id": artist_id, "name": name}:
            raise Wrong(f"POST /artists answered {got}; expected {{'artist_id': {artist_id}, "
                        f"'name': {name!r}}} (ArtistOut of the stored row).")
        if titles != sorted(body["albums"]):
            raise Wrong(f"POST /artists {body} stored the albums {titles}; expected every album "
                        f"of the request, a repeated title as often as it was sent, "
                        f"{sorted(body['albums'])}, with the new artist's id.")
        for hostile in HOSTILE_INPUTS:
            response = await _create(client, {"name": hostile, "albums": []})
            _status(response, 201, f"POST /artists {{'name': {hostile!r}}}")
            if [s[1] for s in await _stored(engine, hostile)] != [hostile]:
                raise Wrong(f"the name {hostile!r} was not stored exactly as sent: a name is "
                            "data, bind it (the ORM does), never paste it into SQL.")
        for taken in (name.upper(), "AC/DC", "ac/dc"):
            body = {"name": taken, "albums": ["Should Not Exist"]}
            response = await _create(client, body)
            _status(response, 409, f"POST /artists {body}", "an artist of that name exists (the "
                    "unique index ignores case): catch IntegrityError on commit and raise "
                    "HTTPException(status_code=409).")
            after = await _stored(engine, taken)
            if len(after) != 1 or "Should Not Exist" in after[0][2]:
                raise Wrong(f"after the 409 for {taken!r}, the database holds {after}: a "
                            "conflict must leave nothing behind.")
        await _race(client, engine, f"Twin Names {rng.randrange(10_000, 99_999)}")
        for bad in ({"name": ""}, {}, {"name": "Fine", "albums": [""]}, {"name": "x" * 121}):
            response = await _send(client, "POST", "/artists", json=bad)
            _status(response, 422, f"POST /artists {bad}", "declare the body as `new: ArtistIn` "
                    "and FastAPI validates it before your code runs.")
        midway = f"Half Written {rng.randrange(10_000, 99_999)}"
        body = {"name": midway, "albums": ["One", "Two", "Three"]}
        async with _failing_album_insert(engine):
            try:
                response = await _create(client, body)
            except LearnerError as exc:
                if not isinstance(exc.__cause__, InjectedFailure):
                    raise
                response = None
        if response is not None and response.status_code == 409:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, which is "
                        "no name conflict, and your route answered 409. Catch IntegrityError "
                        "only; let other errors through (a 500) so that they are seen.")
        if response is not None and response.status_code < 400:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, and your "
                        f"route still answered {response.status_code}.")
        left = await _stored(engine, midway)
        if left:
            raise Wrong(f"POST /artists {body}: the check made the album INSERT fail, yet the "
                        f"artist {midway!r} stayed in the database: it was committed before the "
                        "albums. Add the artist and its albums, then commit once (use "
                        "`await session.flush()` if you need the new id earlier).")
        response = await _create(client, {"name": midway})
        _status(response, 201, f"POST /artists {{'name': {midway!r}}} after the failure")
        _leaks(engine, "the requests")
    return 1


async def _check_create_artist(create_artist) -> str:
    await _mountable(create_artist, "create_artist")
    for seed, backend in enumerate(BACKENDS):
        await _check_create_artist_on(create_artist, backend, seed)
    return ("on SQLite and PostgreSQL: 201 with the stored row and its albums, hostile names "
            "stored as sent; 409 for taken names (any case) with nothing left behind, also when "
            "two requests raced for one name; 422 for "
            "bad bodies; a failure halfway left nothing and was not called a conflict.")


q3 = Exercise(
    "q3", "create_artist", _check_create_artist,
    hints=["Let the database decide whether a name is taken: its unique index refuses a second "
           "one when you commit, and no lookup of yours can see a request that is inserting the "
           "same name at this very moment. Add the artist with its albums, then commit once.",
           "Commit inside `try:`, in the route, before returning; catch IntegrityError only, roll "
           "back and answer 409 (HTTPException). Any other error goes through as a 500.",
           "`artist = Artist(name=new.name, albums=[Album(title=t) for t in new.albums])`; "
           "`session.add(artist)`; `try: await session.commit()` / `except IntegrityError: await "
           "session.rollback(); raise HTTPException(status_code=409, detail=...) from None`; "
           "`return artist`."],
    limit=30.0,
    title="POST /artists: 201, 409 and nothing left behind",
)
