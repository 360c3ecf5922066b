"""Rendering of the files haagent owns: postgresql.conf, pg_hba.conf, the pgpass file.

All pure: inputs in, text out (files.py writes them).

Parameters, by precedence (lowest first):
1. haagent's defaults for unset values (max_wal_senders 10, wal_keep_size 128MB...);
2. the dynamic config `postgresql.parameters` (cluster-wide, from the DCS);
3. the local `postgresql.parameters` (YAML) -- except for the CLUSTER_WIDE ones, where a
   replica needs the same value as the primary, so the dynamic value wins when set;
4. what haagent forces: listen_addresses/port from `postgresql.listen`, cluster_name = scope,
   hot_standby on, wal_level at least replica, wal_log_hints on when use_pg_rewind, the
   synchronous_standby_names chosen by the HA loop, and on a standby that keeps copies of
   permanent logical slots hot_standby_feedback on (and from 17 sync_replication_slots);
5. the recovery settings of `postgresql.recovery_conf` (restore_command...), on every role
   (PostgreSQL reads them in recovery only, and pg_rewind's --restore-target-wal reads
   restore_command from the stopped old primary's file); on a standby, primary_conninfo,
   primary_slot_name (or a standby cluster's remote primary's settings; with no
   upstream in a standby cluster that replays the archive alone, its settings), the latest
   timeline and empty recovery targets, which only haagent sets; during a custom
   bootstrap's first start, that bootstrap's recovery settings (a point-in-time
   recovery) and hot_standby off.

Layers 1-3 are first translated for the server's version (`versions.for_version`), and
what the server itself refuses among them (`ConfInputs.adjusted`, found by
`paramcheck.py`) is left out or brought into range, so that no setting written for
another PostgreSQL version stops the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haagent.config.model import Credentials, ListenAddress
from haagent.config.parse import has_control_characters
from haagent.postgres.errors import ConfigurationError
from haagent.postgres.layout import MANAGED_MARKER
from haagent.postgres.model import Upstream
from haagent.postgres.slots import SLOT_SYNC_SINCE, slot_name
from haagent.postgres.versions import for_version

# Replicas must run with values >= the primary's: the cluster-wide (dynamic) value wins.
CLUSTER_WIDE = frozenset(
    {
        "max_connections",
        "max_locks_per_transaction",
        "max_worker_processes",
        "max_prepared_transactions",
        "wal_level",
        "track_commit_timestamp",
        "max_wal_senders",
        "max_replication_slots",
        "wal_keep_size",
        "wal_log_hints",
    }
)
DEFAULTS: Mapping[str, Any] = {
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "128MB",
}
MINIMUMS: Mapping[str, int] = {"max_wal_senders": 2, "max_replication_slots": 2}
# Set only by haagent: a value in postgresql.parameters for these is ignored.
MANAGED = frozenset(
    {
        "listen_addresses",
        "port",
        "cluster_name",
        "hot_standby",
        "primary_conninfo",
        "primary_slot_name",
        "recovery_target_timeline",
        "hba_file",
        "ident_file",
    }
)
UPSTREAM_MARKER = "# haagent-upstream:"
SYNC_MARKER = "# haagent-synchronous-standby-names:"
# Where parameters come from, as named in messages about them.
LOCAL_PARAMETERS = "postgresql.parameters"
DYNAMIC_PARAMETERS = "(DCS config) postgresql.parameters"
DEFAULT_PARAMETERS = "(haagent's default)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


@dataclass(frozen=True)
class ConfInputs:
    """Everything postgresql.conf is made from."""

    name: str
    scope: str
    listen: ListenAddress
    local: Mapping[str, Any] = field(default_factory=dict)
    dynamic: Mapping[str, Any] = field(default_factory=dict)
    use_pg_rewind: bool = False
    use_slots: bool = True
    # None: not managed by the HA loop (any value from the parameters stands).
    synchronous_standby_names: str | None = None
    standby: bool = False
    upstream: Upstream | None = None
    replication: Credentials = field(default_factory=lambda: Credentials("replicator"))
    # The replication user's libpq keys (sslmode, sslcert, ...), for primary_conninfo.
    replication_options: Mapping[str, str] = field(default_factory=dict)
    pgpass: Path = Path("/tmp/pgpass0")
    hba_file: Path | None = None
    ident_file: Path | None = None
    # PG_VERSION_NUM of the server (150004); None: unknown, parameters are not translated.
    server_version: int | None = None
    # The dynamic `slots` name permanent logical slots: a standby keeps copies of them
    # (slots.py), which needs hot_standby_feedback (the primary keeps the catalog rows
    # they decode); from PostgreSQL 17 its slot sync worker keeps them
    # (sync_replication_slots, which needs a dbname in primary_conninfo).
    logical_slots: bool = False
    # What the server refused among the user's parameters: name -> the value to write
    # instead, or None to leave the parameter out (see paramcheck.py).
    adjusted: Mapping[str, Any] = field(default_factory=dict)
    # The replica recovery settings (`postgresql.recovery_conf`: restore_command, ...).
    recovery: Mapping[str, str] = field(default_factory=dict)
    # A standby cluster that replays the archive alone (`standby_cluster` without host):
    # its recovery settings, which a standby with no upstream runs with (the standby
    # leader, or a member while there is none), as it would those of the remote primary.
    archive_recovery: tuple[tuple[str, str], ...] = ()
    # A custom bootstrap's recovery settings while it recovers (None: not bootstrapping
    # from a backup); its first start runs with hot_standby off.
    bootstrap_recovery: Mapping[str, str] | None = None


@dataclass(frozen=True)
class UserParameters:
    """The parameters from the settings, translated for the server, before haagent's own."""

    values: dict[str, Any]
    sources: dict[str, str]  # name -> the key path it came from
    notes: list[str]  # what the translation for the server's version changed


def format_value(value: Any) -> str:
    """A parameter value as postgresql.conf wants it: on/off, bare numbers, quoted strings."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    if has_control_characters(str(value)):
        raise ConfigurationError(
            f"parameter value {str(value)[:60]!r} contains control characters: it would end "
            "its postgresql.conf line; remove them"
        )
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    return f"'{text}'"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("on", "true", "yes", "1")


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"postgresql.parameters.{name}: {value!r} is not an integer"
        ) from None


def user_parameters(inputs: ConfInputs) -> UserParameters:
    """Defaults, dynamic and local parameters merged (see the module's docstring), each layer
    translated for the server's version; the ones haagent manages itself left out."""
    version = inputs.server_version
    defaults, _ = for_version(DEFAULTS, version, DEFAULT_PARAMETERS)
    dynamic, dynamic_notes = for_version(inputs.dynamic, version, DYNAMIC_PARAMETERS)
    local, local_notes = for_version(inputs.local, version, LOCAL_PARAMETERS)
    merged: dict[str, Any] = dict(defaults)
    sources = dict.fromkeys(defaults, DEFAULT_PARAMETERS)
    merged.update(dynamic)
    sources.update(dict.fromkeys(dynamic, DYNAMIC_PARAMETERS))
    for name, value in local.items():
        if name in CLUSTER_WIDE and name in dynamic:
            continue
        merged[name] = value
        sources[name] = LOCAL_PARAMETERS
    for name in merged:
        if not _NAME.match(name):
            raise ConfigurationError(f"{sources[name]}: {name!r} is not a parameter name")
    for name in MANAGED:
        merged.pop(name, None)
        sources.pop(name, None)
    return UserParameters(merged, sources, dynamic_notes + local_notes)


def effective_parameters(inputs: ConfInputs) -> dict[str, Any]:
    """The parameters haagent writes, without the recovery ones."""
    merged = user_parameters(inputs).values
    for name, replacement in inputs.adjusted.items():
        if name in merged:
            if replacement is None:
                del merged[name]
            else:
                merged[name] = replacement
    for name, minimum in MINIMUMS.items():
        merged[name] = max(_as_int(name, merged.get(name, DEFAULTS[name])), minimum)
    if str(merged.get("wal_level", "replica")).lower() == "minimal":
        merged["wal_level"] = "replica"
    if inputs.use_pg_rewind and not _truthy(merged.get("wal_log_hints", False)):
        merged["wal_log_hints"] = True
    if inputs.synchronous_standby_names is not None:
        merged["synchronous_standby_names"] = inputs.synchronous_standby_names
    merged["listen_addresses"] = ",".join(inputs.listen.hosts)
    merged["port"] = inputs.listen.port
    merged["cluster_name"] = inputs.scope
    # Off only while a restored cluster recovers to its target: a backup taken with larger
    # max_connections (...) than these would otherwise stop a hot standby from starting.
    merged["hot_standby"] = inputs.bootstrap_recovery is None
    if inputs.standby and inputs.logical_slots and inputs.use_slots:
        merged["hot_standby_feedback"] = True
        if (inputs.server_version or 0) >= SLOT_SYNC_SINCE:
            merged["sync_replication_slots"] = True
    if inputs.hba_file is not None:
        merged["hba_file"] = str(inputs.hba_file)
    if inputs.ident_file is not None:
        merged["ident_file"] = str(inputs.ident_file)
    return merged


def conninfo(params: Mapping[str, str | int]) -> str:
    """A libpq `key=value` string, quoting values that need it."""
    parts = []
    for key, raw in params.items():
        value = str(raw)
        if value == "" or re.search(r"[\s'\\=]", value):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def primary_conninfo(inputs: ConfInputs, upstream: Upstream) -> str:
    """How the walreceiver connects: no password here, it reads the pgpass file."""
    return conninfo(
        {
            "host": upstream.host,
            "port": upstream.port,
            "user": inputs.replication.username,
            "passfile": str(inputs.pgpass.absolute()),
            "application_name": inputs.name,
            **inputs.replication_options,
            **(_slot_sync_dbname(inputs)),
        }
    )


def _slot_sync_dbname(inputs: ConfInputs) -> dict[str, str]:
    """PostgreSQL 17's slot sync worker connects to a database named in primary_conninfo."""
    sync = inputs.logical_slots and inputs.use_slots
    if sync and (inputs.server_version or 0) >= SLOT_SYNC_SINCE:
        return {"dbname": "postgres"}
    return {}


# Emptied on a standby, so that no included file makes it stop (or promote) at a target.
RECOVERY_TARGETS = (
    "recovery_target",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
)


def recovery_parameters(inputs: ConfInputs) -> dict[str, Any]:
    params: dict[str, Any] = dict(inputs.recovery)
    if inputs.bootstrap_recovery is not None:
        params.update(inputs.bootstrap_recovery)
        return params
    if not inputs.standby:
        return params
    params.update(dict.fromkeys(RECOVERY_TARGETS, ""))
    params["recovery_target_timeline"] = "latest"
    upstream = inputs.upstream
    if upstream is not None:
        params["primary_conninfo"] = primary_conninfo(inputs, upstream)
        if upstream.remote:
            if upstream.slot is not None:
                params["primary_slot_name"] = upstream.slot
            params.update(upstream.recovery)
        elif inputs.use_slots:
            params["primary_slot_name"] = slot_name(inputs.name)
    else:
        params.update(inputs.archive_recovery)
    return params


def render_conf(inputs: ConfInputs, base_conf: str = "postgresql.base.conf") -> str:
    """haagent's postgresql.conf: includes the user's original, then haagent's values."""
    lines = [
        f"{MANAGED_MARKER} for member {inputs.name} of cluster {inputs.scope}: it is rewritten "
        "on every change, do not edit.",
        "# Local settings go in postgresql.parameters (YAML), cluster-wide ones in the DCS "
        "config; the original",
        "# postgresql.conf is kept as postgresql.base.conf and read first.",
        f"include_if_exists {format_value(base_conf)}",
    ]
    if inputs.upstream is not None and inputs.standby:
        up = inputs.upstream
        lines.append(f"{UPSTREAM_MARKER} {up.name} {up.host} {up.port}")
    if inputs.synchronous_standby_names is not None:
        lines.append(f"{SYNC_MARKER} {inputs.synchronous_standby_names}")
    lines.append("")
    params = effective_parameters(inputs)
    params.update(recovery_parameters(inputs))
    lines.extend(f"{name} = {format_value(params[name])}" for name in sorted(params))
    return "\n".join(lines) + "\n"


def parse_upstream_marker(text: str) -> Upstream | None:
    """The upstream haagent last wrote into its postgresql.conf (to adopt after a restart)."""
    for line in text.splitlines():
        if line.startswith(UPSTREAM_MARKER):
            parts = line[len(UPSTREAM_MARKER) :].split()
            if len(parts) == 3 and parts[2].isdigit():
                return Upstream(parts[0], parts[1], int(parts[2]))
    return None


def parse_sync_marker(text: str) -> str | None:
    """The synchronous_standby_names the HA loop chose last (None: not managed)."""
    for line in text.splitlines():
        if line.startswith(SYNC_MARKER):
            return line[len(SYNC_MARKER) :].strip()
    return None


def render_hba(lines: tuple[str, ...]) -> str:
    for line in lines:
        if has_control_characters(line):
            raise ConfigurationError(f"pg_hba line {line[:60]!r} contains control characters")
    header = f"{MANAGED_MARKER}: from postgresql.pg_hba (or bootstrap.pg_hba); do not edit.\n"
    return header + "".join(f"{line}\n" for line in lines)


def _pgpass_field(value: str) -> str:
    if has_control_characters(value):
        raise ConfigurationError(
            "a user name or password contains control characters, which a pgpass line "
            "cannot hold: remove them from postgresql.authentication"
        )
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_pgpass(entries: Iterable[tuple[str, int, Credentials]]) -> str:
    """One `host:port:*:user:password` line per (host, port, credentials) with a password.

    Each password is offered only to the server it is meant for: never `*:*:*`, which
    would hand it to any address a tool is pointed at.  The first entry for the same
    host, port and user wins.
    """
    seen: set[tuple[str, int, str]] = set()
    lines = []
    for host, port, cred in entries:
        if cred.password is None or (host, port, cred.username) in seen:
            continue
        seen.add((host, port, cred.username))
        fields = (_pgpass_field(host), str(port), "*", _pgpass_field(cred.username))
        lines.append(":".join(fields) + f":{_pgpass_field(cred.password)}\n")
    return "".join(lines)
