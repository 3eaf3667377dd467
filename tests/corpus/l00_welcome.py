"""Wrong answers to exercises/00-welcome-workbook.ipynb."""

from tests.corpus import wrong


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
