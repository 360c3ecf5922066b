"""Everything the agent does to its local PostgreSQL.

The entry point is `haagent.postgres.local.LocalPostgres` (not imported here, so
that importing `haagent.postgres.model` stays cheap), beside `PostgresControl`, the
protocol the HA loop drives; nothing here imports the engine.  Each of its methods is
async, idempotent and bounded by a timeout; errors are `errors.PostgresError`
subclasses with actionable messages.

Modules:
    local        `PostgresControl` (what the engine calls) and `LocalPostgres`: every
                 action, one logged line each
    instance     `Instance`: one server's settings, files, role on disk, connection;
                 start/stop/reload/promote/checkpoint, the postmaster watch
    status       the one-round status query -> model.PostgresStatus
    bootstrap    initdb, roles, post_bootstrap
    replica      pg_basebackup clones
    rewind       divergence check, crash recovery, pg_rewind, becoming a standby
    slots        replication slots (and how long a member's slot is kept)
    sync_names   rendering and reading synchronous_standby_names
    conf, files  rendering and writing the files haagent owns
    session      connections whose every use is bounded (hung servers included)
    proc, watch  tools as cancellable subprocesses; postmaster pid and its exit
    layout, controldata, lsn, errors, model

Files haagent owns in the config dir (the data dir unless postgresql.config_dir):
postgresql.conf (the user's original is renamed postgresql.base.conf once and
included first), pg_hba.conf when pg_hba lines are configured, standby.signal,
and the pgpass file (mode 0600) that every tool and the WAL receiver read
passwords from.  The postmaster's stderr goes to haagent-postmaster.log in the
data dir.
"""
