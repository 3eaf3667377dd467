"""Helpers for the Async Databases in Python course: databases, checks and progress.

    import course
    path = course.fresh_sqlite("03-aiosqlite")         # a fresh Chinook SQLite file
    db = await course.fresh_postgres("04-asyncpg")     # a fresh Chinook PostgreSQL database
    url = await course.fresh_engine_url("07-orm-sessions", "postgresql")  # for create_async_engine
    course.explain(error)                              # what an async-database error means
"""

from course.db.engines import fresh_engine_url
from course.db.postgres import PgDatabase, fresh_postgres
from course.db.sqlite import fresh_sqlite
from course.errors import CourseError, explain, install_ipython_handler

__all__ = ["CourseError", "PgDatabase", "explain", "fresh_engine_url", "fresh_postgres", "fresh_sqlite"]

install_ipython_handler()
