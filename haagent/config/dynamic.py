"""The cluster-wide dynamic configuration: `bootstrap.dcs` in the file, `config` in etcd.

Both are read by the same parser so that a value the file accepts is accepted in the DCS
and the other way round.  Keys haagent does not model are kept (in `DynamicConfig.raw`)
and written back unchanged by `dynamic_config_to_dict`.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from haagent.config.model import DynamicConfig, DynamicPostgresql, StandbyCluster
from haagent.config.parse import (
    MISSING,
    Context,
    Section,
    check_json,
    check_parameter_text,
    describe,
    is_hostname,
    is_ip,
    parse_bool,
    parse_bytes,
    parse_hba_lines,
    parse_mapping,
    parse_str_list,
)
from haagent.config.recovery import parse_replica_recovery
from haagent.config.replica_methods import check_method_name
from haagent.config.timing import MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT, MIN_TTL, adjust_timings

log = logging.getLogger("haagent.config")

# Old names Patroni still accepts, and the names that replaced them.
ALIASES = {
    "master_start_timeout": "primary_start_timeout",
    "master_stop_timeout": "primary_stop_timeout",
}
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_KEPT = "not used by haagent; kept in the DCS config as is"
_SECONDS = "an integer number of seconds"


def parse_dynamic_config(
    data: Mapping[str, Any], *, source: str = "config", warnings: list[str] | None = None
) -> DynamicConfig:
    """Parse the JSON object of the etcd `config` key (or any dynamic config mapping).

    `source` prefixes the key paths in messages (`config.ttl`).  Warnings (unknown keys)
    are appended to `warnings` when given, otherwise logged on the `haagent.config` logger.
    Raises `ConfigError` for the first invalid value.
    """
    ctx = Context(origin="<dcs>")
    result = parse_dynamic(ctx, source, data)
    if warnings is not None:
        warnings.extend(ctx.warnings)
    else:
        for warning in ctx.warnings:
            log.warning("%s", warning)
    return result


def parse_dynamic(ctx: Context, prefix: str, data: object) -> DynamicConfig:
    """`parse_dynamic_config` with the caller's context (file, environment, warnings)."""
    section = Section(ctx, prefix, data, what="a mapping of dynamic settings (ttl, loop_wait, ...)")
    check_json(ctx, prefix, section.data)
    for old, new in ALIASES.items():
        if section.has(old) and section.has(new):
            ctx.warn(section.key(old), f"old name of {new}, which is also set and wins")
    timings, adjusted = adjust_timings(
        section.get_seconds("ttl", 30, minimum=MIN_TTL),
        section.get_seconds("loop_wait", 10, minimum=MIN_LOOP_WAIT),
        section.get_seconds("retry_timeout", 10, minimum=MIN_RETRY_TIMEOUT),
    )
    if adjusted is not None:
        ctx.warn(section.key("ttl"), adjusted)
    result = DynamicConfig(
        ttl=timings.ttl,
        loop_wait=timings.loop_wait,
        retry_timeout=timings.retry_timeout,
        maximum_lag_on_failover=_bytes(section, "maximum_lag_on_failover", 1048576),
        maximum_lag_on_syncnode=_bytes(section, "maximum_lag_on_syncnode", -1, minimum=-1),
        primary_start_timeout=_aliased_seconds(section, "primary_start_timeout", 300),
        primary_stop_timeout=_aliased_seconds(section, "primary_stop_timeout", 0),
        synchronous_mode=_synchronous_mode(section) is not False,
        quorum_commit=_synchronous_mode(section) == "quorum",
        synchronous_mode_strict=section.get_bool("synchronous_mode_strict", False),
        synchronous_node_count=section.get_int(
            "synchronous_node_count", 1, what="a number of standbys", minimum=1
        ),
        failsafe_mode=section.get_bool("failsafe_mode", False),
        check_timeline=section.get_bool("check_timeline", False),
        pause=section.get_bool("pause", False),
        member_slots_ttl=section.get_seconds("member_slots_ttl", 1800, minimum=0),
        max_timelines_history=section.get_int(
            "max_timelines_history", 0, what="a number of history rows", minimum=0
        ),
        postgresql=_postgresql(section.section("postgresql")),
        slots=_slots(section),
        ignore_slots=_ignore_slots(section),
        standby_cluster=_standby_cluster(section),
        raw=copy.deepcopy(dict(section.data)),
    )
    section.finish(_KEPT)
    return result


def _bytes(section: Section, name: str, default: int, *, minimum: int = 0) -> int:
    value = section.get(name)
    if value is MISSING:
        return default
    return parse_bytes(section.ctx, section.key(name), value, minimum=minimum)


def _aliased_seconds(section: Section, name: str, default: int) -> int:
    old = next(k for k, v in ALIASES.items() if v == name)
    section.ignore(old)
    if section.has(name) or not section.has(old):
        return section.get_seconds(name, default, minimum=0)
    return section.get_seconds(old, default, minimum=0)


def _synchronous_mode(section: Section) -> bool | str:
    """True, False or "quorum" (quorum commit: `ANY k (...)`)."""
    key = section.key("synchronous_mode")
    value = section.get("synchronous_mode")
    if value is MISSING:
        return False
    if isinstance(value, str) and value.strip().lower() == "quorum":
        return "quorum"
    if isinstance(value, str) and value.strip().lower() not in _BOOLEAN_WORDS:
        raise section.ctx.error(
            key, f"{describe(value)} is not a synchronous mode", "true / on, false / off or quorum"
        )
    return parse_bool(section.ctx, key, value)


_BOOLEAN_WORDS = frozenset({"on", "off", "true", "false", "yes", "no", "y", "n", "1", "0"})
_STANDBY_NEEDS = "host (and port) of the primary to replicate from, or restore_command"


def _standby_cluster(section: Section) -> StandbyCluster | None:
    """The `standby_cluster` section (None when absent); as Patroni, it makes this a standby
    cluster when it names a host, a port or a restore_command (the archive alone), and one
    that names none of them is refused rather than ignored.  Each name of its
    create_replica_methods is a method whose section is `postgresql.NAME` on every node
    (`config.replica_methods`)."""
    if not section.has("standby_cluster"):
        section.ignore("standby_cluster")
        return None
    standby = section.section("standby_cluster")
    ctx = standby.ctx
    host = standby.get_str("host", None)
    if host is not None and not (is_ip(host) or is_hostname(host)):
        raise ctx.error(standby.key("host"), f"{host!r} is not a host name", "a host name or IP")
    port = standby.get_int("port", 0, what="a port number", minimum=1) or None
    if port is not None and port > 65535:
        raise ctx.error(standby.key("port"), f"port {port} is out of range", "1..65535")
    if port is not None and host is None:
        raise ctx.error(standby.key("host"), "is missing (port is set)", "the primary's host")
    slot = standby.get_str("primary_slot_name", None)
    if slot is not None and not _SLOT_NAME.match(slot):
        raise ctx.error(
            standby.key("primary_slot_name"),
            f"{slot!r} is not a valid slot name",
            "lower-case letters, digits and _",
        )
    methods: tuple[str, ...] = ()
    if standby.has("create_replica_methods"):
        key = standby.key("create_replica_methods")
        methods = parse_str_list(
            ctx, key, standby.get("create_replica_methods"), what="replica method names"
        )
        for i, method in enumerate(methods):
            check_method_name(ctx, f"{key}[{i}]", method, list(methods[:i]))
    texts: dict[str, str | None] = {}
    for name in ("restore_command", "archive_cleanup_command", "recovery_min_apply_delay"):
        value = standby.get_str(name, None)
        if value is not None:
            check_parameter_text(ctx, standby.key(name), value)
        texts[name] = value
    if host is None and texts["restore_command"] is None:
        raise ctx.error(section.key("standby_cluster"), "names no primary", _STANDBY_NEEDS)
    standby.finish(_KEPT)
    return StandbyCluster(
        host=host,
        port=port,
        primary_slot_name=slot,
        create_replica_methods=methods,
        restore_command=texts["restore_command"],
        archive_cleanup_command=texts["archive_cleanup_command"],
        recovery_min_apply_delay=texts["recovery_min_apply_delay"],
    )


def standby_cluster_to_dict(standby: StandbyCluster) -> dict[str, Any]:
    """The `standby_cluster` section as JSON: the keys that are set."""
    values: dict[str, Any] = {
        "host": standby.host,
        "port": standby.port,
        "primary_slot_name": standby.primary_slot_name,
        "create_replica_methods": list(standby.create_replica_methods) or None,
        "restore_command": standby.restore_command,
        "archive_cleanup_command": standby.archive_cleanup_command,
        "recovery_min_apply_delay": standby.recovery_min_apply_delay,
    }
    return {k: v for k, v in values.items() if v is not None}


def _postgresql(section: Section) -> DynamicPostgresql:
    value = section.get("parameters")
    parameters = parse_mapping(
        section.ctx,
        section.key("parameters"),
        None if value is MISSING else value,
        what="a mapping of PostgreSQL parameters (name: value)",
    )
    for name, value in parameters.items():
        if isinstance(value, Mapping | list | tuple):
            raise section.ctx.error(
                section.key(f"parameters.{name}"), f"{describe(value)} is not a value", "a scalar"
            )
        check_parameter_text(section.ctx, section.key(f"parameters.{name}"), value)
    pg_hba: tuple[str, ...] = ()
    if section.has("pg_hba"):
        pg_hba = parse_hba_lines(section.ctx, section.key("pg_hba"), section.get("pg_hba"))
    recovery = section.get("recovery_conf")
    result = DynamicPostgresql(
        use_pg_rewind=section.get_bool("use_pg_rewind", False),
        use_slots=section.get_bool("use_slots", True),
        parameters=parameters,
        pg_hba=pg_hba,
        recovery_conf={}
        if recovery is MISSING
        else parse_replica_recovery(section.ctx, section.key("recovery_conf"), recovery),
    )
    section.finish(_KEPT)
    return result


# The keys a permanent slot may have, by type (Patroni's); any other is refused.
SLOT_KEYS = {
    "physical": ("type", "cluster_type"),
    "logical": ("type", "database", "plugin"),
}


def _slots(section: Section) -> dict[str, Any]:
    """The permanent slots: physical when they name no database and plugin, as Patroni
    infers it; a logical one names both.  `cluster_type` (`primary` or `standby`) says in
    which kind of cluster a physical slot is kept."""
    slots = section.section("slots")
    result: dict[str, Any] = {}
    for name, value in slots.data.items():
        key = slots.key(name)
        slots.ignore(name)
        if not _SLOT_NAME.match(name):
            raise slots.ctx.error(
                key, f"{name!r} is not a valid slot name", "lower-case letters, digits and _"
            )
        slot = parse_mapping(slots.ctx, key, value, what="a mapping with type (physical/logical)")
        inferred = "logical" if slot.get("database") and slot.get("plugin") else "physical"
        slot_type = slot.get("type", inferred)
        if slot_type not in ("physical", "logical"):
            raise slots.ctx.error(
                f"{key}.type", f"{describe(slot_type)} is not a slot type", "physical or logical"
            )
        allowed = SLOT_KEYS[slot_type]
        for extra in slot:
            if extra not in allowed:
                raise slots.ctx.error(
                    f"{key}.{extra}",
                    f"is not a setting of a {slot_type} slot",
                    ", ".join(allowed),
                )
        if slot_type == "logical":
            for needed in ("database", "plugin"):
                if not isinstance(slot.get(needed), str) or not slot[needed]:
                    raise slots.ctx.error(
                        f"{key}.{needed}", "is missing", f"the {needed} of the logical slot"
                    )
        cluster_type = slot.get("cluster_type")
        if cluster_type is not None and cluster_type not in ("primary", "standby"):
            raise slots.ctx.error(
                f"{key}.cluster_type",
                f"{describe(cluster_type)} is not a cluster type",
                "primary or standby",
            )
        result[name] = {"type": slot_type, **slot}
    return result


def _ignore_slots(section: Section) -> tuple[Mapping[str, Any], ...]:
    key = section.key("ignore_slots")
    value = section.get("ignore_slots")
    if value is MISSING:
        return ()
    what = "a list of mappings of name, type, database, plugin"
    if not isinstance(value, list):
        raise section.ctx.error(key, f"{describe(value)} is not a list", what)
    result: list[Mapping[str, Any]] = []
    for i, item in enumerate(value):
        entry = parse_mapping(section.ctx, f"{key}[{i}]", item, what=what)
        for name in entry:
            if name not in ("name", "type", "database", "plugin"):
                raise section.ctx.error(f"{key}[{i}].{name}", "unknown key", what)
        result.append(entry)
    return tuple(result)


def dynamic_config_to_dict(config: DynamicConfig) -> dict[str, Any]:
    """The JSON object for the etcd `config` key: `raw` with the modelled values on top.

    Old key names (`master_start_timeout`) are replaced by the current ones;
    `parse_dynamic_config(dynamic_config_to_dict(c)) == c` holds.
    """
    result: dict[str, Any] = copy.deepcopy(dict(config.raw))
    for old in ALIASES:
        result.pop(old, None)
    postgresql = dict(result.get("postgresql") or {})
    postgresql.update(
        use_pg_rewind=config.postgresql.use_pg_rewind,
        use_slots=config.postgresql.use_slots,
        parameters=dict(config.postgresql.parameters),
    )
    if config.postgresql.pg_hba:
        postgresql["pg_hba"] = list(config.postgresql.pg_hba)
    if config.postgresql.recovery_conf:
        # As read (`raw`) when it was: keys haagent leaves out are the user's all the same.
        postgresql.setdefault("recovery_conf", dict(config.postgresql.recovery_conf))
    result.update(
        ttl=config.ttl,
        loop_wait=config.loop_wait,
        retry_timeout=config.retry_timeout,
        maximum_lag_on_failover=config.maximum_lag_on_failover,
        maximum_lag_on_syncnode=config.maximum_lag_on_syncnode,
        primary_start_timeout=config.primary_start_timeout,
        primary_stop_timeout=config.primary_stop_timeout,
        synchronous_mode="quorum" if config.quorum_commit else config.synchronous_mode,
        synchronous_mode_strict=config.synchronous_mode_strict,
        synchronous_node_count=config.synchronous_node_count,
        failsafe_mode=config.failsafe_mode,
        check_timeline=config.check_timeline,
        pause=config.pause,
        member_slots_ttl=config.member_slots_ttl,
        max_timelines_history=config.max_timelines_history,
        postgresql=postgresql,
    )
    if config.slots:
        result["slots"] = copy.deepcopy(dict(config.slots))
    if config.ignore_slots:
        result["ignore_slots"] = [dict(entry) for entry in config.ignore_slots]
    if config.standby_cluster is not None:
        result["standby_cluster"] = standby_cluster_to_dict(config.standby_cluster)
    else:
        result.pop("standby_cluster", None)
    return result


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as `PATCH /config` and `haactl edit-config` apply it to
    the dynamic config: objects merge, `null` deletes, anything else replaces.  Returns a
    new document that shares nothing with `target` or `patch`."""
    result = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
