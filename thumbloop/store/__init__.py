"""Storage: SQLAlchemy schema, Alembic migrations, idempotent writes."""
