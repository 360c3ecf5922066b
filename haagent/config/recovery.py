"""`recovery_conf`: PostgreSQL's recovery settings, for replicas and for a custom bootstrap.

Two places take it, as in Patroni:

- `postgresql.recovery_conf` (or the dynamic config's `postgresql.recovery_conf`, which
  the node's own replaces whole): what every replica runs with, typically the
  `restore_command` that fetches WAL from a backup repository.  haagent sets the
  recovery target (the latest timeline), `primary_conninfo` and `primary_slot_name`
  itself: those keys are warned about and left out, as Patroni leaves them out.
- `bootstrap.<method>.recovery_conf`: the first start of a cluster a custom bootstrap
  restored, such as a point-in-time recovery (`restore_command`,
  `recovery_target_time`, `recovery_target_action: promote`).

PostgreSQL 12 and later read these from postgresql.conf (haagent writes them there) and
standby.signal / recovery.signal; the names of older versions' recovery.conf that have
no equivalent are refused with what to use instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from haagent.config.model import DynamicConfig, PostgresqlSettings
from haagent.config.parse import MISSING, Context, check_parameter_text, describe, parse_mapping

# What a replica may be given: fetching and cleaning up archived WAL, a delay.
REPLICA_KEYS = frozenset(
    {
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "recovery_min_apply_delay",
    }
)
# Recovery targets: a bootstrap's point-in-time recovery only.
TARGET_KEYS = frozenset(
    {
        "recovery_target",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_xid",
        "recovery_target_lsn",
        "recovery_target_inclusive",
        "recovery_target_timeline",
        "recovery_target_action",
    }
)
# Set by haagent on a replica (or meaningless from PostgreSQL 12 on).
MANAGED_KEYS = {
    "primary_conninfo": "haagent points a replica at its leader itself",
    "primary_slot_name": "haagent names the slot from the member name itself",
    "standby_mode": "haagent writes standby.signal itself (PostgreSQL 12+ has no standby_mode)",
}
OLD_NAMES = {
    "trigger_file": "a replica is promoted by haagent only (PostgreSQL 12+: promote_trigger_file)",
    "promote_trigger_file": "a replica is promoted by haagent only, never by a file",
    "pause_at_recovery_target": "recovery_target_action",
}
NOT_RECOVERY = "not a recovery setting, ignored (server settings go in parameters)"
RECOVERY_KEYS = REPLICA_KEYS | TARGET_KEYS | set(MANAGED_KEYS) | set(OLD_NAMES)


def _values(ctx: Context, key: str, value: object) -> dict[str, str]:
    what = "a mapping of recovery settings (restore_command: ..., ...)"
    raw = parse_mapping(ctx, key, None if value is MISSING else value, what=what)
    result: dict[str, str] = {}
    for name, item in raw.items():
        item_key = f"{key}.{name}"
        if isinstance(item, bool):
            text = "on" if item else "off"
        elif isinstance(item, str | int | float):
            text = str(item)
        else:
            raise ctx.error(item_key, f"{describe(item)} is not a value", "text or a number")
        check_parameter_text(ctx, item_key, text)
        result[name] = text
    return result


def parse_replica_recovery(ctx: Context, key: str, value: object) -> dict[str, str]:
    """`postgresql.recovery_conf` (or the dynamic one): what a replica is given."""
    result: dict[str, str] = {}
    for name, text in _values(ctx, key, value).items():
        item_key = f"{key}.{name}"
        if name in REPLICA_KEYS:
            result[name] = text
        elif name in TARGET_KEYS:
            ctx.warn(
                item_key,
                "ignored: a replica recovers to the latest timeline (as in Patroni); a "
                "point-in-time recovery belongs in bootstrap.<method>.recovery_conf",
            )
        elif name in MANAGED_KEYS:
            ctx.warn(item_key, f"ignored: {MANAGED_KEYS[name]}")
        elif name in OLD_NAMES:
            ctx.warn(item_key, f"ignored: {OLD_NAMES[name]}")
        else:
            ctx.warn(item_key, NOT_RECOVERY)
    return result


def parse_bootstrap_recovery(ctx: Context, key: str, value: object) -> dict[str, str]:
    """`bootstrap.<method>.recovery_conf`: the first start of a restored cluster, which must
    end its recovery as a primary."""
    result: dict[str, str] = {}
    for name, text in _values(ctx, key, value).items():
        item_key = f"{key}.{name}"
        if name in REPLICA_KEYS or name in TARGET_KEYS:
            result[name] = text
        elif name == "standby_mode":
            if text.strip().lower() in ("on", "true", "yes", "1"):
                raise ctx.error(
                    item_key,
                    "a bootstrap that stays a standby never becomes the cluster's primary",
                    "no standby_mode (a restored cluster recovers, then is promoted)",
                )
        elif name in ("primary_conninfo", "primary_slot_name"):
            ctx.warn(item_key, "ignored: a bootstrap recovers from the archive, not as a standby")
        elif name in OLD_NAMES:
            raise ctx.error(item_key, "is not a PostgreSQL 12+ setting", OLD_NAMES[name])
        else:
            ctx.warn(item_key, NOT_RECOVERY)
    how = {"recovery_target_action", "recovery_target_timeline", "recovery_target_inclusive"}
    targets = sorted(n for n in result if n in TARGET_KEYS - how)
    action = result.get("recovery_target_action")
    if targets and (action is None or action.strip().lower() != "promote"):
        shown = "is missing" if action is None else f"{action!r} would not end the recovery"
        raise ctx.error(
            f"{key}.recovery_target_action",
            f"{shown} while {', '.join(targets)} is set (PostgreSQL would pause there, "
            "and the bootstrap never finish)",
            "promote",
        )
    return result


def replica_recovery(local: PostgresqlSettings, dynamic: DynamicConfig) -> Mapping[str, str]:
    """The recovery settings a replica runs with: the node's own `recovery_conf` when it has
    one, else the dynamic config's (the node's replaces it whole, as in Patroni)."""
    if local.recovery_conf is not None:
        return local.recovery_conf
    return dynamic.postgresql.recovery_conf
