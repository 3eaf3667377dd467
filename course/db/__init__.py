"""The databases layer: Chinook from datasets/, fresh SQLite copies, the embedded PostgreSQL
cluster (or an instructor's server in DATABASE_URL) with its template and clones, and their
errors turned into the course's own one-line CourseError. It imports nothing above it."""
