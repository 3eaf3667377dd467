"""q5: an upsert on SQLite and PostgreSQL, one statement per call."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from course.checking.backends import on_each_backend
from course.checking.checks import Exercise, LearnerError, Wrong
from course.db.engines import Backend
from course.models import Artist
from course.probes import HOSTILE_INPUTS, StatementCounter

from ._common import LIMIT, fstring_sql, literal_in, on_backend, run


async def _artist_names(engine: AsyncEngine, ids: list[int]) -> dict[int, str | None]:
    async with engine.connect() as conn:
        return dict((await conn.execute(
            select(Artist.artist_id, Artist.name).where(Artist.artist_id.in_(ids)))).all())


ONE_STATEMENT = ("the exercise asks for one: an upsert, INSERT … ON CONFLICT DO UPDATE, with "
                 "every artist in it whatever the length of the list, and no SELECT first (the ON "
                 "CONFLICT clause is what tells new ids from old ones).")


async def _check_save_artists(save_artists) -> str:
    await on_each_backend("check-07-q5-{backend}",
                          lambda engine, backend: _upsert_cases(engine, backend, save_artists))
    return ("one statement per call on SQLite and PostgreSQL: new artists added, existing ones "
            "renamed, hostile names kept as data, committed.")


async def _upsert_cases(engine: AsyncEngine, backend: Backend, save_artists) -> None:
    on = on_backend(backend)
    rng = random.Random()
    Session = async_sessionmaker(engine, expire_on_commit=False)
    fresh = rng.sample(range(1_000, 9_000), 4)
    first = [(1, "AC/DC (remastered)"), (fresh[0], "Brand New Band"), (58, "Purple, Deep")]
    second = [(fresh[0], HOSTILE_INPUTS[1]), (fresh[1], HOSTILE_INPUTS[0]), (2, HOSTILE_INPUTS[2]),
              (fresh[2], HOSTILE_INPUTS[3]), (6, ""), (fresh[3], "AC\\DC 100%_")]
    bulk = [(i, f"Artist number {i}") for i in rng.sample(range(200, 9_000), 40)]
    for artists in (first, second, bulk, []):
        ids = [i for i, _ in artists]
        untouched = await _artist_names(engine, [3, 4, 5])
        before = await _artist_names(engine, ids)
        async with Session() as session:
            with StatementCounter(engine) as counter:
                try:
                    await run(save_artists, session, list(artists))
                except LearnerError as exc:
                    if artists is second:
                        raise Wrong(f"{on}names such as {HOSTILE_INPUTS[1]!r} broke your statement "
                                    f"({exc}): values must never become SQL text. Pass them as "
                                    "values of an insert() construct.") from None
                    if not artists:
                        raise Wrong(f"{on}save_artists(session, []) raised {exc}: an INSERT needs "
                                    "at least one row. Return early when the list is empty.") from None
                    if type(exc.__cause__).__name__ == "IntegrityError":
                        raise Wrong(f"{on}saving artists that already exist raised {exc}: a plain "
                                    "INSERT cannot update a row. Add ON CONFLICT (artist_id) DO "
                                    "UPDATE: `stmt.on_conflict_do_update(...)`.") from None
                    if isinstance(exc.__cause__, AttributeError) and "constraint_target" in str(exc):
                        raise Wrong(f"{on}your code raised {exc}: that is the SQLite insert() "
                                    "construct on PostgreSQL. Pick it by the session's dialect: "
                                    "`session.bind.dialect.name` is 'sqlite' or 'postgresql'.") from None
                    raise
            if (value := literal_in(counter.statements, ids)) is not None:
                raise fstring_sql(value)
            if artists and len(counter.statements) > 1:
                kinds = ", ".join(s.split(None, 1)[0].upper() for s in counter.statements[:6])
                more = "…" if len(counter.statements) > 6 else ""
                raise Wrong(f"{on}saving {len(artists)} artists ran {len(counter.statements)} "
                            f"statements ({kinds}{more}); {ONE_STATEMENT}")
            if session.in_transaction() and artists:
                raise Wrong(f"{on}save_artists returned with its transaction still open: nothing "
                            "is committed. End with `await session.commit()`.")
        after = await _artist_names(engine, ids)
        if after != dict(artists):
            missing = [i for i, _ in artists if i not in after]
            stale = [i for i, name in artists if i in after and after[i] != name]
            if missing and len(missing) == len(artists) and before != dict(artists):
                raise Wrong(f"{on}another session sees none of the {len(artists)} artists you saved: "
                            "they were never committed. End with `await session.commit()`.")
            if stale and all(before.get(i) == after[i] for i in stale):
                raise Wrong(f"{on}artists {stale} already existed and kept their old names: on a "
                            "conflict, update the name with the new value, `set_={'name': "
                            "stmt.excluded.name}` (on_conflict_do_nothing keeps the old row).")
            raise Wrong(f"{on}after save_artists, artists {ids[:4]}… are {[after.get(i) for i in ids[:4]]}; "
                        f"expected {[n for _, n in artists[:4]]}.")
        if await _artist_names(engine, [3, 4, 5]) != untouched:
            raise Wrong(f"{on}save_artists changed artists it was not given (3, 4 or 5): the "
                        "statement must touch only the rows in the list.")


q5 = Exercise(
    "q5", "save_artists", _check_save_artists,
    hints=["One statement does it: an INSERT that turns into an UPDATE when the key is taken "
           "(lesson 07, section 7). Both databases have one, and SQLAlchemy offers it in "
           "each dialect's own insert().",
           "INSERT … ON CONFLICT (artist_id) DO UPDATE SET name = excluded.name, from "
           "`sqlalchemy.dialects.sqlite.insert` or `sqlalchemy.dialects.postgresql.insert`.",
           "Pick the construct with `session.bind.dialect.name`, then `stmt = insert(Artist)."
           "values([{'artist_id': i, 'name': n} for i, n in artists])` and "
           "`stmt.on_conflict_do_update(index_elements=[Artist.artist_id], set_={'name': "
           "stmt.excluded.name})`.",
           "Return early on an empty list (an INSERT needs at least one row); otherwise `await "
           "session.execute(stmt)` and `await session.commit()`."],
    limit=LIMIT,
    title="An upsert on SQLite and PostgreSQL",
)
