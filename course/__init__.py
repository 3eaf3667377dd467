"""Helpers for the Async Databases in Python course: databases, checks and progress.

    import course
    path = course.fresh_sqlite("03-aiosqlite")         # a fresh Chinook SQLite file
    db = await course.fresh_postgres("04-asyncpg")     # a fresh Chinook PostgreSQL database
    url = await course.fresh_engine_url("07-orm-sessions", "postgresql")  # for create_async_engine
    course.explain(error)                              # what an async-database error means
"""

from course.databases import fresh_engine_url
from course.errors import CourseError, explain, install_ipython_handler
from course.postgres import PgDatabase, fresh_postgres
from course.sqlite import fresh_sqlite

__all__ = ["CourseError", "PgDatabase", "explain", "fresh_engine_url", "fresh_postgres", "fresh_sqlite"]

install_ipython_handler()
