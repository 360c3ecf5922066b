"""Typed, frozen settings: the per-node YAML in Patroni's format.

`Settings` is the whole per-node file; `DynamicConfig` is the cluster-wide part
kept in the DCS `config` key (seeded from `bootstrap.dcs`).  Every value has
the default Patroni users expect.  Loading and validation live in `load.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from haagent.config import tags as tag_rules

WatchdogMode = Literal["off", "automatic", "required"]
VerifyClient = Literal["none", "optional", "required"]

DEFAULT_NAMESPACE = "/service/"


@dataclass(frozen=True)
class Address:
    """A `host:port` pair, as written in the config (`connect_address: node1:8008`)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ListenAddress:
    """Where a server listens: one or more hosts (`*` or `0.0.0.0` for all) and a port."""

    hosts: tuple[str, ...]
    port: int

    def __str__(self) -> str:
        return f"{','.join(self.hosts)}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str | None = field(default=None, repr=False)
    # libpq connection keys given with a PostgreSQL user (postgresql.authentication.*):
    # sslmode, sslcert, sslkey, sslrootcert, ... (config/postgresql.py: LIBPQ_KEYS).
    libpq: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class RestApiSettings:
    listen: ListenAddress = ListenAddress(("0.0.0.0",), 8008)
    connect_address: Address = Address("127.0.0.1", 8008)
    authentication: Credentials | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    keyfile_password: str | None = field(default=None, repr=False)
    cafile: Path | None = None
    verify_client: VerifyClient = "none"
    allowlist: tuple[str, ...] = ()
    allowlist_include_members: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    @property
    def api_url(self) -> str:
        """The member's `api_url` as published in the DCS."""
        return f"{self.scheme}://{self.connect_address}/patroni"


@dataclass(frozen=True)
class CtlSettings:
    """Patroni's `ctl` section: how haactl, and this agent, call the members' REST APIs.

    `cacert` (else `restapi.cafile`, else the system's CAs) verifies their
    certificates; `certfile`/`keyfile` (else `restapi.certfile`/`keyfile`) is the client
    certificate presented to them; `authentication` (else `restapi.authentication`) the
    credentials of the changing requests; `insecure` skips certificate verification.
    """

    insecure: bool = False
    cacert: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    keyfile_password: str | None = field(default=None, repr=False)
    authentication: Credentials | None = None


@dataclass(frozen=True)
class Etcd3Settings:
    hosts: tuple[Address, ...] = (Address("127.0.0.1", 2379),)
    protocol: Literal["http", "https"] = "http"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class DynamicPostgresql:
    use_pg_rewind: bool = False
    use_slots: bool = True
    parameters: Mapping[str, Any] = field(default_factory=dict)
    pg_hba: tuple[str, ...] = ()
    # Recovery settings of every replica (restore_command, ...), unless the node's own
    # `postgresql.recovery_conf` replaces them (as in Patroni, the local one wins whole).
    recovery_conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StandbyCluster:
    """The dynamic `standby_cluster` section: this cluster replicates from another one.

    The member holding the leader key runs as the standby leader: a standby of `host`:`port`
    (streaming, through `primary_slot_name` when set) and/or of the WAL archive
    (`restore_command`); the other members replicate from it.
    """

    host: str | None = None
    port: int | None = None
    primary_slot_name: str | None = None
    # The methods that build a member of the standby cluster (the standby leader from
    # `host`, or from a backup: `no_leader`), each with its section `postgresql.NAME`;
    # empty: the member's own postgresql.create_replica_methods.
    create_replica_methods: tuple[str, ...] = ()
    restore_command: str | None = None
    archive_cleanup_command: str | None = None
    recovery_min_apply_delay: str | None = None

    @property
    def streams(self) -> bool:
        """The standby leader streams from a remote server (not from the archive alone)."""
        return self.host is not None

    @property
    def recovery(self) -> tuple[tuple[str, str], ...]:
        """The recovery settings the standby leader runs with, over the node's own
        `recovery_conf` (as Patroni: restore_command, archive_cleanup_command,
        recovery_min_apply_delay), those that are set."""
        values = (
            ("restore_command", self.restore_command),
            ("archive_cleanup_command", self.archive_cleanup_command),
            ("recovery_min_apply_delay", self.recovery_min_apply_delay),
        )
        return tuple((key, value) for key, value in values if value is not None)


@dataclass(frozen=True)
class DynamicConfig:
    """The cluster-wide config of the DCS `config` key (Patroni's dynamic configuration).

    `raw` keeps the JSON object as read, so keys haagent does not model survive
    an edit and are written back unchanged.
    """

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10
    maximum_lag_on_failover: int = 1048576
    maximum_lag_on_syncnode: int = -1
    primary_start_timeout: int = 300
    primary_stop_timeout: int = 0
    # As written: `synchronous_mode: true` or `quorum` (then `quorum_commit` too).  What is in
    # force is `synchronous` and `quorum`: a standby cluster has no synchronous replication.
    synchronous_mode: bool = False
    quorum_commit: bool = False
    synchronous_mode_strict: bool = False
    synchronous_node_count: int = 1
    failsafe_mode: bool = False
    check_timeline: bool = False
    pause: bool = False
    member_slots_ttl: int = 1800
    # Rows of the `history` key kept (the newest); 0 keeps every one (up to a ceiling).
    max_timelines_history: int = 0
    postgresql: DynamicPostgresql = DynamicPostgresql()
    slots: Mapping[str, Any] = field(default_factory=dict)
    ignore_slots: tuple[Mapping[str, Any], ...] = ()
    standby_cluster: StandbyCluster | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def synchronous(self) -> bool:
        """Synchronous replication is in force (`synchronous_mode` on or `quorum`, and not a
        standby cluster, as Patroni has it)."""
        return self.synchronous_mode and self.standby_cluster is None

    @property
    def quorum(self) -> bool:
        """Quorum commit is in force (`synchronous_mode: quorum`, not a standby cluster)."""
        return self.quorum_commit and self.synchronous


@dataclass(frozen=True)
class CustomBootstrap:
    """`bootstrap.method: NAME` with its section `bootstrap.NAME`: a command that makes the
    data directory (a restore from a backup, say) instead of initdb.

    The command is run as `command [--scope=S --datadir=D] [--key=value ...]` (`no_params`
    leaves out all but the command).  `recovery_conf` is written for the first start (a
    point-in-time recovery: `recovery_target_time`, `recovery_target_action: promote`);
    `keep_existing_recovery_conf` keeps what the command wrote instead (pgBackRest's
    `restore --type=time` writes its own).
    """

    name: str
    command: str
    keep_existing_recovery_conf: bool = False
    no_params: bool = False
    recovery_conf: Mapping[str, str] | None = None
    # The section's other keys, as written, passed as `--key=value`.
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BootstrapSettings:
    dcs: DynamicConfig = DynamicConfig()
    # Each entry is a switch (`data-checksums`) or an option with a value (`("encoding", "UTF8")`).
    initdb: tuple[str | tuple[str, str], ...] = ()
    pg_hba: tuple[str, ...] = ()
    post_bootstrap: str | None = None
    # `bootstrap.method` other than initdb; None: initdb.
    custom: CustomBootstrap | None = None


BASEBACKUP = "basebackup"


@dataclass(frozen=True)
class ReplicaMethod:
    """One of `postgresql.create_replica_methods`, with its section `postgresql.NAME`.

    `basebackup` is haagent's own pg_basebackup (its options are `postgresql.basebackup`).
    Any other method runs `command` (by default the method's name) as
    `command --scope=S --role=replica --datadir=D --connstring=C [--key=value ...]`, its
    own keys first, as Patroni does; `no_params` passes none of them.  `no_leader`: it
    can build a replica with no member to copy from (from a backup); `keep_data`: it may
    run on a data directory that is not empty (pgBackRest's `--delta` restore).
    """

    name: str
    command: str = ""
    keep_data: bool = False
    no_leader: bool = False
    no_params: bool = False
    # The section's keys but `command`, as written (`keep_data`... included, as Patroni
    # passes them), each rendered as Patroni renders it (`True`, `1`, `100M`).
    options: tuple[tuple[str, str], ...] = ()

    @property
    def is_basebackup(self) -> bool:
        return self.name == BASEBACKUP


@dataclass(frozen=True)
class PostgresqlAuthentication:
    superuser: Credentials = Credentials("postgres")
    replication: Credentials = Credentials("replicator")
    rewind: Credentials | None = None


@dataclass(frozen=True)
class PostgresqlSettings:
    data_dir: Path
    listen: ListenAddress = ListenAddress(("127.0.0.1",), 5432)
    connect_address: Address = Address("127.0.0.1", 5432)
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    config_dir: Path | None = None
    pgpass: Path = Path("/tmp/pgpass0")
    authentication: PostgresqlAuthentication = PostgresqlAuthentication()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    pg_hba: tuple[str, ...] = ()
    pg_ctl_timeout: int = 60
    use_unix_socket: bool = False
    # In order; the first that works builds the replica (Patroni's `create_replica_methods`).
    create_replica_methods: tuple[ReplicaMethod, ...] = (ReplicaMethod(BASEBACKUP),)
    # The sections of the methods only `bootstrap.dcs.standby_cluster.create_replica_methods`
    # names (`config.replica_methods` resolves a standby cluster's methods).
    other_replica_methods: tuple[ReplicaMethod, ...] = ()
    # pg_basebackup options: switches and {option: value} pairs, like bootstrap.initdb.
    basebackup: tuple[str | tuple[str, str], ...] = ()
    # Recovery settings of a replica (restore_command, recovery_min_apply_delay, ...);
    # None: the dynamic config's `postgresql.recovery_conf`.
    recovery_conf: Mapping[str, str] | None = None
    callbacks: Mapping[str, str] = field(default_factory=dict)
    # Run after the leader key is taken and before promoting; a non-zero exit cancels the
    # promotion.  Run before every stop of a running PostgreSQL that can wait for it.
    pre_promote: str | None = None
    before_stop: str | None = None
    # haagent only: how long a callback, pre_promote or before_stop may run (seconds).
    callback_timeout: int = 60
    remove_data_directory_on_rewind_failure: bool = False
    remove_data_directory_on_diverged_timelines: bool = False

    @property
    def effective_config_dir(self) -> Path:
        return self.config_dir if self.config_dir is not None else self.data_dir

    @property
    def conn_url(self) -> str:
        """The member's `conn_url` as published in the DCS."""
        return f"postgres://{self.connect_address}/postgres"


@dataclass(frozen=True)
class WatchdogSettings:
    mode: WatchdogMode = "automatic"
    device: str = "/dev/watchdog"
    safety_margin: int = 5
    # `linux`, or a driver an installed package adds (haagent/plugins.py): haagent's
    # test harness adds `testing`, the client of its watchdog simulator (tests only).
    driver: str = "linux"
    # haagent only: a helper process that stops PostgreSQL when this agent dies while
    # it leads (haagent/watchdog/guard.py); independent of `mode`.
    agent_death_guard: bool = True


@dataclass(frozen=True)
class Tags:
    nofailover: bool = False
    noloadbalance: bool = False
    clonefrom: bool = False
    nosync: bool = False
    nostream: bool = False
    failover_priority: int = 1
    replicatefrom: str | None = None
    # The tags as published (member key, /patroni, tag_ health checks): as written,
    # user-defined ones included, but without a predefined boolean tag that is false,
    # as Patroni leaves those out (config/sections.py: published_tags).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_mapping(self) -> Mapping[str, Any]:
        """The tags as a mapping for `tag_rules` and `core.topology`: as written in the file,
        or (for settings built in code) the fields, a false boolean counting as not written."""
        if self.raw:
            return self.raw
        fields: dict[str, Any] = {"failover_priority": self.failover_priority}
        fields.update((k, True) for k in ("nofailover", "nosync", "nostream") if getattr(self, k))
        if self.replicatefrom is not None:
            fields["replicatefrom"] = self.replicatefrom
        return fields

    @property
    def can_be_leader(self) -> bool:
        return not tag_rules.nofailover(self.as_mapping())

    @property
    def sync_priority(self) -> int:
        return tag_rules.sync_priority(self.as_mapping())


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: str = "%(asctime)s %(levelname)s: %(message)s"
    dir: Path | None = None


@dataclass(frozen=True)
class Settings:
    """One node's configuration file, validated."""

    scope: str
    name: str
    postgresql: PostgresqlSettings
    namespace: str = DEFAULT_NAMESPACE
    restapi: RestApiSettings = RestApiSettings()
    ctl: CtlSettings = CtlSettings()
    etcd3: Etcd3Settings = Etcd3Settings()
    bootstrap: BootstrapSettings = BootstrapSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    tags: Tags = Tags()
    log: LogSettings = LogSettings()
    source: Path | None = field(default=None, compare=False)

    @property
    def dcs_prefix(self) -> str:
        """`/<namespace>/<scope>/` with repeated slashes collapsed, as Patroni builds it."""
        parts = [p for p in (self.namespace + "/" + self.scope).split("/") if p]
        return "/" + "/".join(parts) + "/"
