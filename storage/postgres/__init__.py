"""PostgreSQL implementation of the storage interfaces (asyncpg), selected by ``DATABASE_URL``."""
