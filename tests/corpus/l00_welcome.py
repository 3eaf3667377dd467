"""Wrong answers to exercises/00-welcome-workbook.ipynb, and right ones written another way."""

import asyncio
import time
from datetime import timedelta

from tests.corpus import correct, wrong


@wrong("q1", expect="Pad the seconds")
def mmss_without_padding(milliseconds: int) -> str:
    seconds = milliseconds // 1000
    return f"{seconds // 60}:{seconds % 60}"


@wrong("q1", expect="instead of rounding")
def mmss_rounded(milliseconds: int) -> str:
    seconds = round(milliseconds / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


@wrong("q1", expect="should return a str")
def mmss_prints(milliseconds: int) -> None:
    seconds = milliseconds // 1000
    print(f"{seconds // 60}:{seconds % 60:02d}")


@wrong("q1", expect="Pad only the seconds")
def mmss_pads_minutes(milliseconds: int) -> str:
    minutes, seconds = divmod(milliseconds // 1000, 60)
    return f"{minutes:02d}:{seconds:02d}"


@wrong("q1", expect="past 59")
def mmss_with_hours(milliseconds: int) -> str:
    hours, rest = divmod(milliseconds // 1000, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@wrong("q1", expect="wrapped around at 60")
def mmss_strftime(milliseconds: int) -> str:
    text = time.strftime("%M:%S", time.gmtime(milliseconds // 1000))
    return text[1:] if text.startswith("0") else text


@wrong("q1", expect="expected '5:43'")
def mmss_timedelta(milliseconds: int) -> str:
    return str(timedelta(milliseconds=milliseconds))


@correct("q1")
def mmss_from_minutes(milliseconds: int) -> str:
    return f"{milliseconds // 60000}:{milliseconds % 60000 // 1000:02}"


@correct("q1")
def mmss_concat_zfill(milliseconds: int) -> str:
    minutes, seconds = divmod(int(milliseconds / 1000), 60)
    return str(minutes) + ":" + str(seconds).zfill(2)


@wrong("q2", expect="forget `await`")
async def total_length_without_await(track_ids, get_milliseconds) -> int:
    return sum(get_milliseconds(track_id) for track_id in track_ids)


@wrong("q2", expect="forget `await`")
async def total_length_returns_coroutine(track_ids, get_milliseconds):
    total = 0
    for track_id in track_ids:
        total += await get_milliseconds(track_id)
    return get_milliseconds(track_ids[0]) if track_ids else total


@wrong("q2", expect="expected 0")
async def total_length_fails_on_empty(track_ids, get_milliseconds) -> int:
    lengths = [await get_milliseconds(track_id) for track_id in track_ids]
    return sum(lengths) if lengths else None


@wrong("q2", expect="counts twice")
async def total_length_of_set(track_ids, get_milliseconds) -> int:
    return sum([await get_milliseconds(track_id) for track_id in set(track_ids)])


@wrong("q2", expect="counts twice")
async def total_length_of_dict(track_ids, get_milliseconds) -> int:
    lengths = {track_id: await get_milliseconds(track_id) for track_id in track_ids}
    return sum(lengths.values())


@wrong("q2", expect="is an int")
async def total_length_float(track_ids, get_milliseconds) -> float:
    total = 0.0
    for track_id in track_ids:
        total += await get_milliseconds(track_id)
    return total


@wrong("q2", expect="at most once")
async def total_length_looks_up_twice(track_ids, get_milliseconds) -> int:
    total = 0
    for track_id in track_ids:
        if await get_milliseconds(track_id):
            total += await get_milliseconds(track_id)
    return total


@correct("q2")
async def total_length_gather(track_ids, get_milliseconds) -> int:
    return sum(await asyncio.gather(*(get_milliseconds(track_id) for track_id in track_ids)))


@correct("q2")
async def total_length_task_group(track_ids, get_milliseconds) -> int:
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(get_milliseconds(track_id)) for track_id in track_ids]
    return sum(task.result() for task in tasks)


@correct("q2")
async def total_length_each_distinct_once(track_ids, get_milliseconds) -> int:
    lengths = {}
    for track_id in track_ids:
        if track_id not in lengths:
            lengths[track_id] = await get_milliseconds(track_id)
    return sum(lengths[track_id] for track_id in track_ids)


@wrong("q3", expect="Check your LIMIT")
def top_genres_off_by_one() -> str:
    return """
        SELECT g.name, COUNT(*) AS tracks
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id ORDER BY tracks DESC, g.name LIMIT 6
    """


@wrong("q3", expect="wrong order")
def top_genres_ascending() -> str:
    return """
        SELECT name, tracks FROM (
            SELECT g.name, COUNT(*) AS tracks
            FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
            GROUP BY g.genre_id ORDER BY tracks DESC LIMIT 5
        ) ORDER BY tracks
    """


@wrong("q3", expect="could not run your query")
def top_genres_bad_column() -> str:
    return "SELECT genre, COUNT(*) FROM track GROUP BY genre LIMIT 5"


@wrong("q3", expect="row 1 should be ('Rock', 1297); yours is ('Rock', 1213). Count every")
def genres_counting_distinct_names() -> str:
    return """
        SELECT g.name, COUNT(DISTINCT t.name) AS tracks
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id ORDER BY tracks DESC, g.name LIMIT 5
    """


@wrong("q3", expect="another order than by name")
def genres_no_tiebreak() -> str:
    return """
        SELECT g.name, COUNT(*) AS tracks
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id, g.name ORDER BY tracks DESC LIMIT 5
    """


@wrong("q3", expect="another order than by name")
def genres_no_tiebreak_grouped_by_name() -> str:
    return """
        SELECT g.name, COUNT(*) AS tracks
        FROM genre AS g JOIN track AS t USING (genre_id)
        GROUP BY g.name ORDER BY tracks DESC LIMIT 5
    """


@wrong("q3", expect="order of their genre_id")
def genres_tiebreak_id() -> str:
    return """
        SELECT g.name, COUNT(*) AS tracks
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id ORDER BY tracks DESC, g.genre_id LIMIT 5
    """


@wrong("q3", expect="from Z to A")
def genres_tiebreak_desc() -> str:
    return """
        SELECT g.name, COUNT(*) AS tracks
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id ORDER BY tracks DESC, g.name DESC LIMIT 5
    """


@wrong("q3", expect="columns are swapped")
def genres_count_first() -> str:
    return """
        SELECT COUNT(*) AS tracks, g.name
        FROM track AS t JOIN genre AS g ON g.genre_id = t.genre_id
        GROUP BY g.genre_id ORDER BY tracks DESC, g.name LIMIT 5
    """


@correct("q3")
def genres_from_genre_left_join() -> str:
    return """
        SELECT genre.name, COUNT(track.track_id)
        FROM genre LEFT JOIN track ON track.genre_id = genre.genre_id
        GROUP BY genre.genre_id
        ORDER BY 2 DESC, 1;
    """.replace(";", " LIMIT 5;")


@correct("q3")
def genres_subquery_nocase() -> str:
    return """
        SELECT name, (SELECT COUNT(*) FROM track WHERE track.genre_id = genre.genre_id) AS n
        FROM genre
        ORDER BY n DESC, name COLLATE NOCASE
        LIMIT 5
    """


@correct("q3")
def genres_window_rank() -> str:
    return """
        WITH counted AS (
            SELECT g.name AS name, COUNT(*) AS n,
                   ROW_NUMBER() OVER (ORDER BY COUNT(*) DESC, g.name) AS place
            FROM track AS t JOIN genre AS g USING (genre_id)
            GROUP BY g.name
        )
        SELECT name, n FROM counted WHERE place <= 5 ORDER BY place
    """
