"""Where a valid config behaves differently under haagent than under Patroni.

`haagent --validate-config FILE` lists these after its verdict, one line each, with
the key path: settings haagent honours, but not exactly as Patroni does, so that a
Patroni user sees what changes before switching.  Keys haagent ignores or refuses
are not here: they are warnings or errors of the config's parsing.  Pure: no I/O.
"""

from __future__ import annotations

from haagent.config.model import Settings

PATRONI_MIN_TTL = 20


def differences(settings: Settings) -> list[str]:
    """`key path: what differs`, in the order of the config's sections."""
    found: list[str] = []
    bootstrap = settings.bootstrap
    pg = settings.postgresql
    if bootstrap.dcs.ttl < PATRONI_MIN_TTL:
        found.append(
            f"bootstrap.dcs.ttl: {bootstrap.dcs.ttl} is kept (Patroni raises a ttl below "
            f"{PATRONI_MIN_TTL} to {PATRONI_MIN_TTL})"
        )
    if bootstrap.custom is not None:
        found.append(
            f"bootstrap.{bootstrap.custom.name}: when the method fails, what it left in the "
            "data directory is removed and logged (Patroni moves it aside to "
            "<data_dir>_<time>)"
        )
    standby = bootstrap.dcs.standby_cluster
    if standby is not None and not standby.create_replica_methods:
        found.append(
            "bootstrap.dcs.standby_cluster: without create_replica_methods, the members of "
            "the standby cluster are built with postgresql.create_replica_methods (Patroni: "
            "basebackup alone)"
        )
    own = [m for m in pg.create_replica_methods if not m.is_basebackup]
    methods = [*own, *(m for m in pg.other_replica_methods if m not in own)]
    for method in methods:
        if not method.keep_data:
            found.append(
                f"postgresql.{method.name}: never run on a data directory that is not empty "
                "(Patroni empties it first); the replica is not built until it is emptied, "
                "or keep_data is set"
            )
    if pg.callbacks:
        names = ", ".join(sorted(pg.callbacks))
        found.append(
            f"postgresql.callbacks ({names}): run one at a time in the order of their events, "
            f"each for at most postgresql.callback_timeout ({pg.callback_timeout}s); Patroni "
            "kills the callback still running when the next event comes"
        )
    if pg.pre_promote:
        found.append(
            "postgresql.pre_promote: bounded by postgresql.callback_timeout "
            f"({pg.callback_timeout}s), a timeout cancels the promotion like a non-zero exit; "
            "the node then stays out of the leader race for ttl"
        )
    if pg.before_stop:
        found.append(
            "postgresql.before_stop: bounded by postgresql.callback_timeout "
            f"({pg.callback_timeout}s), and skipped when a primary must stop writes at once "
            "(its leader key lost, or etcd unreachable)"
        )
    return found
