"""The daemon's PostgreSQL: `haagent.postgres`'s implementation of `PostgresControl`."""

from haagent.postgres.port import make_postgres

__all__ = ["make_postgres"]
