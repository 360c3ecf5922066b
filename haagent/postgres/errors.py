"""Errors of PostgreSQL management, each saying what went wrong and what to do.

Every error is a `PostgresError`; callers that only need "it failed" catch
that.  It is a RuntimeError, so the HA loop's executor records a failing
PostgreSQL operation as a failed action (one warning line, retried) rather than
a failed cycle.  Messages name the setting, path, address or member involved and never
contain a password.
"""

from __future__ import annotations


class PostgresError(RuntimeError):
    """An operation on the local PostgreSQL failed; the message says why and what to do."""


class ConfigurationError(PostgresError):
    """The `postgresql` settings cannot work (wrong bin_dir, bad parameter name...)."""


class DataDirectoryError(PostgresError):
    """The data directory is unusable as is: not empty, wrong owner, half-made, in the way.

    Raised instead of deleting anything: wiping a data directory is only ever
    done by `Postgres.remove_data_directory()`, called with explicit intent.
    """


class BootstrapError(PostgresError):
    """initdb, role creation or the post_bootstrap script failed."""


class StartError(PostgresError):
    """PostgreSQL did not start, or did not accept connections in time."""


class StartTimeout(StartError):
    """PostgreSQL is still starting (recovering, waiting for WAL) when the timeout ran out.

    The postmaster is left running: it may well finish starting later.
    """


class StopError(PostgresError):
    """PostgreSQL did not stop, even after escalating to an immediate shutdown and SIGKILL."""


class PromoteError(PostgresError):
    """PostgreSQL did not leave recovery in time."""


class ReplicaCreationError(PostgresError):
    """pg_basebackup from every source failed; the partial copy was removed."""


class RewindError(PostgresError):
    """pg_rewind ran and failed; the data directory is kept as it is for inspection."""


class RewindImpossible(RewindError):
    """The timelines diverged but pg_rewind cannot be used (off, or no checksums/wal_log_hints).

    Nothing was changed.  Re-cloning (`reinit`) is the way out, and a separate,
    explicit choice.
    """


class UpstreamNotReady(PostgresError):
    """The node to follow is still in recovery (its promotion is under way): its timeline
    says nothing yet, so following it is postponed to the next cycle."""


class StatusError(PostgresError):
    """A query to the local PostgreSQL failed or timed out."""


class QueryError(StatusError):
    """A command sent to PostgreSQL (CHECKPOINT, slot changes...) failed or timed out;
    `sqlstate` is PostgreSQL's error code when it answered with an error."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
