"""Which replica methods build this node's data directory, in order.

In a standby cluster whose `standby_cluster.create_replica_methods` is set, those (as
Patroni: for the standby leader, cloned from the remote primary or restored from a
backup, and for every other member); otherwise the node's own
`postgresql.create_replica_methods`.  Each name other than basebackup is the section
`postgresql.NAME` of this node's configuration; with no such section, the command of
that name, run with the usual arguments (as Patroni does).
"""

from __future__ import annotations

from dataclasses import dataclass

from haagent.config.model import BASEBACKUP, DynamicConfig, PostgresqlSettings, ReplicaMethod
from haagent.config.parse import Context

STANDBY_METHODS_KEY = "standby_cluster.create_replica_methods"
# The section's keys haagent reads; a replica method may not take one of these names.
SETTINGS = (
    "listen", "connect_address", "data_dir", "bin_dir", "config_dir", "pgpass",
    "authentication", "parameters", "pg_hba", "pg_ctl_timeout", "use_unix_socket",
    "create_replica_methods", "basebackup", "recovery_conf", "callbacks", "pre_promote",
    "before_stop", "callback_timeout", "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
)  # fmt: skip


@dataclass(frozen=True)
class ReplicaMethods:
    """The methods in effect and the key that lists them."""

    methods: tuple[ReplicaMethod, ...]
    key: str

    @property
    def without_leader(self) -> bool:
        """Some method can build the data directory with no server to copy from."""
        return any(m.no_leader and not m.is_basebackup for m in self.methods)


def replica_methods(local: PostgresqlSettings, dynamic: DynamicConfig) -> ReplicaMethods:
    standby = dynamic.standby_cluster
    if standby is None or not standby.create_replica_methods:
        return ReplicaMethods(local.create_replica_methods, "postgresql.create_replica_methods")
    known = {m.name: m for m in (*local.create_replica_methods, *local.other_replica_methods)}
    # A name with no section here: the command of that name (`ReplicaMethod.command`).
    methods = tuple(known.get(name, ReplicaMethod(name)) for name in standby.create_replica_methods)
    return ReplicaMethods(methods, STANDBY_METHODS_KEY)


def check_method_name(ctx: Context, item_key: str, name: str, before: list[str]) -> None:
    """A replica method's name in a `create_replica_methods` list (`before`: the names
    listed before it): a word, listed once, not the name of a postgresql setting."""
    if not name.strip() or has_space(name):
        raise ctx.error(item_key, f"{name!r} is not a method name", "a name like pgbackrest")
    if name in before:
        raise ctx.error(item_key, f"{name} is listed twice", "each method once")
    if name != BASEBACKUP and name in SETTINGS:
        raise ctx.error(
            item_key,
            f"{name!r} is the name of a postgresql setting, so it cannot name a method's section",
            "another name for the method",
        )


def has_space(text: str) -> bool:
    return any(c.isspace() for c in text)
