"""Prometheus metrics: Patroni's names, computed from the published status at scrape time,
plus haagent's own counters and histograms that the HA engine feeds.

Beside them, per replication slot: `haagent_replication_slot_lag_bytes` and
`haagent_replication_slot_lost` (labels `slot` and `type`).

Patroni's metrics keep their names and their `scope` and `name` labels, so
existing dashboards work.  They are all exposed as gauges: prometheus-client
would rename a counter to `<name>_total`, and Patroni's dashboards query
`patroni_xlog_location`, not `patroni_xlog_location_total`.

The engine calls `record_decision(reason_code)` once per HA cycle,
`observe_loop(seconds)` with the cycle's duration,
`record_refused_role_change(from, to)` for a decision whose role change is not in
the transition table (`haagent.core.roles`), and `observe_etcd_call(op, seconds)`
around each etcd request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from haagent import __version__
from haagent.api.health import is_quorum_standby, is_sync_standby, replication_state
from haagent.core.fitness import lag, primary_position
from haagent.core.slots import slot_lag
from haagent.engine.status import PublishedStatus
from haagent.postgres.model import PostgresStatus

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Patroni's fixed numbers for `patroni_postgres_state`, keyed by haagent's PgState text.
POSTGRES_STATE_NUMBERS = {
    "initializing new cluster": 0,
    "bootstrap failed": 1,
    "running custom bootstrap script": 2,
    "creating replica": 4,
    "running": 5,
    "starting": 6,
    "start failed": 8,
    "restarting": 9,
    "stopping": 11,
    "stopped": 12,
    "crashed": 14,
}

_LOOP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ETCD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def version_number(version: str) -> int:
    """Patroni's `patroni_version`: the semver without periods, 4.1.0 -> 40100."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def epoch(text: str | None) -> float:
    """Unix seconds of a PostgreSQL timestamp such as `2024-08-28 19:39:26.35+00`; 0 if none."""
    if not text:
        return 0.0
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return 0.0
    return when.timestamp() if when.tzinfo is not None else 0.0


def _patroni_values(status: PublishedStatus) -> list[tuple[str, str, float]]:
    pg = status.postgres
    running = pg.running and status.state == "running"
    replica = status.is_running_replica
    streaming = replication_state(status) == "streaming"
    values = [
        (
            "version",
            "Patroni semver without periods.",
            version_number(status.version or __version__),
        ),
        ("postgres_running", "Value is 1 if Postgres is running, 0 otherwise.", running),
        (
            "postmaster_start_time",
            "Epoch seconds since Postgres started.",
            epoch(pg.postmaster_start_time) if running else 0.0,
        ),
        ("primary", "Value is 1 if this node is the leader, 0 otherwise.", status.is_primary),
        (
            "xlog_location",
            "Current location of the Postgres transaction log, 0 if this node is not the leader.",
            (pg.write_lsn or 0) if status.is_primary else 0,
        ),
        (
            "standby_leader",
            "Value is 1 if this node is the standby_leader, 0 otherwise.",
            status.role == "standby_leader" and status.holds_leader_key,
        ),
        ("replica", "Value is 1 if this node is a replica, 0 otherwise.", replica),
        (
            "sync_standby",
            "Value is 1 if this node is a sync standby replica, 0 otherwise.",
            replica and is_sync_standby(status),
        ),
        (
            "quorum_standby",
            "Value is 1 if this node is a quorum standby, 0 otherwise.",
            replica and is_quorum_standby(status),
        ),
        (
            "xlog_received_location",
            "Current location of the received Postgres transaction log, 0 if this node is not a"
            " replica.",
            (pg.receive_lsn or pg.replay_lsn or 0) if replica else 0,
        ),
        (
            "xlog_replayed_location",
            "Current location of the replayed Postgres transaction log, 0 if this node is not a"
            " replica.",
            (pg.replay_lsn or 0) if replica else 0,
        ),
        (
            "xlog_replayed_timestamp",
            "Current timestamp of the replayed Postgres transaction log, 0 if null.",
            epoch(pg.replay_timestamp) if replica else 0.0,
        ),
        (
            "xlog_paused",
            "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
            replica and pg.replay_paused,
        ),
        ("postgres_streaming", "Value is 1 if Postgres is streaming, 0 otherwise.", streaming),
        (
            "postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            replica and not streaming,
        ),
        (
            "postgres_server_version",
            "Version of Postgres (if running), 0 otherwise.",
            (pg.server_version or 0) if running else 0,
        ),
        (
            "cluster_unlocked",
            "Value is 1 if the cluster is unlocked, 0 if locked.",
            status.cluster.leader is None,
        ),
        (
            "failsafe_mode_is_active",
            "Value is 1 if failsafe mode is active, 0 if inactive.",
            status.failsafe_active,
        ),
        (
            "postgres_timeline",
            "Postgres timeline of this node (if running), 0 otherwise.",
            (pg.timeline or 0) if running else 0,
        ),
        (
            "dcs_last_seen",
            "Epoch timestamp when DCS was last contacted successfully by Patroni.",
            int(status.dcs_last_seen or 0),
        ),
        (
            "pending_restart",
            "Value is 1 if the node needs a restart, 0 otherwise.",
            status.pending_restart or pg.pending_restart,
        ),
        ("is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.", status.paused),
    ]
    state_number = POSTGRES_STATE_NUMBERS.get(status.state)
    if state_number is not None:
        values.append(("postgres_state", "Numeric representation of Postgres state.", state_number))
    return [(f"patroni_{name}", doc, float(value)) for name, doc, value in values]


def _haagent_values(status: PublishedStatus) -> list[tuple[str, str, float]]:
    """haagent's own gauges, for the alert rules in `prometheus/haagent-alerts.yml`."""
    config = status.config
    values = [
        ("ttl_seconds", "The leader key's ttl (dynamic config).", config.ttl),
        ("loop_wait_seconds", "The HA loop's loop_wait (dynamic config).", config.loop_wait),
        (
            "maximum_lag_on_failover_bytes",
            "maximum_lag_on_failover (dynamic config): a replica further behind may not take over.",
            config.maximum_lag_on_failover,
        ),
        (
            "last_cycle_timestamp_seconds",
            "Unix time at which the last HA cycle finished.",
            status.loop_finished_wall,
        ),
        (
            "leaderless_since_timestamp_seconds",
            "Unix time since which this node has seen no leader key; 0 while there is one.",
            status.leaderless_since or 0.0,
        ),
        (
            "watchdog_failed",
            "Value is 1 if watchdog mode is required and the watchdog is unusable, 0 otherwise.",
            status.watchdog_failed,
        ),
    ]
    behind = lag(primary_position(status.cluster), status.postgres.lsn)
    if status.is_running_replica and behind is not None:
        values.append(
            (
                "replication_lag_bytes",
                "Bytes this replica is behind the primary's last published position.",
                behind,
            )
        )
    return [(f"haagent_{name}", doc, float(value)) for name, doc, value in values]


def _slot_families(status: PostgresStatus, labels: list[str]) -> Iterator[Metric]:
    """haagent's per-slot gauges: the bytes of WAL between this node's position and where
    each slot's consumer got (`slot_lag`), and whether PostgreSQL reports it lost."""
    here = status.replay_lsn if status.in_recovery else status.write_lsn
    lag = GaugeMetricFamily(
        "haagent_replication_slot_lag_bytes",
        "Bytes of WAL between this node's position and each replication slot's position.",
        labels=["scope", "name", "slot", "type"],
    )
    lost = GaugeMetricFamily(
        "haagent_replication_slot_lost",
        "Value is 1 if PostgreSQL reports the slot lost (wal_status lost), 0 otherwise.",
        labels=["scope", "name", "slot", "type"],
    )
    for slot in status.slots:
        if slot.temporary:
            continue
        slot_labels = [*labels, slot.name, slot.kind]
        bytes_behind = slot_lag(slot, here)
        if bytes_behind is not None:
            lag.add_metric(slot_labels, float(bytes_behind))
        lost.add_metric(slot_labels, float(slot.lost))
    yield lag
    yield lost


class _StatusCollector:
    """A one-shot collector over one status value (generate_latest only needs `collect`)."""

    def __init__(self, status: PublishedStatus, scope: str, name: str) -> None:
        self._status = status
        self._labels = [scope, name]

    def collect(self) -> Iterator[Metric]:
        for metric_name, doc, value in [
            *_patroni_values(self._status),
            *_haagent_values(self._status),
        ]:
            family = GaugeMetricFamily(metric_name, doc, labels=["scope", "name"])
            family.add_metric(self._labels, value)
            yield family
        if self._status.postgres.running:
            yield from _slot_families(self._status.postgres, self._labels)


class Metrics:
    """haagent's metrics, in a registry of their own (not prometheus-client's global one)."""

    def __init__(self, *, scope: str, name: str) -> None:
        self.scope = scope
        self.name = name
        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = Counter(
            "haagent_decision",
            "HA cycles that ended with each decision reason.",
            ["reason"],
            registry=self.registry,
        )
        self._refused_role_changes = Counter(
            "haagent_role_change_refused",
            "Decisions whose role change is not in the transition table (core/roles.py).",
            ["from_role", "to_role"],
            registry=self.registry,
        )
        self._loop = Histogram(
            "haagent_loop_duration_seconds",
            "Duration of one HA cycle (observe, decide, act).",
            buckets=_LOOP_BUCKETS,
            registry=self.registry,
        )
        self._etcd = Histogram(
            "haagent_etcd_call_seconds",
            "Latency of etcd requests by operation.",
            ["op"],
            buckets=_ETCD_BUCKETS,
            registry=self.registry,
        )

    def record_decision(self, reason_code: str) -> None:
        self._decisions.labels(reason=reason_code or "none").inc()

    def record_refused_role_change(self, before: str, after: str) -> None:
        self._refused_role_changes.labels(from_role=before, to_role=after).inc()

    def observe_loop(self, seconds: float) -> None:
        self._loop.observe(seconds)

    def observe_etcd_call(self, op: str, seconds: float) -> None:
        self._etcd.labels(op=op).observe(seconds)

    def render(self, status: PublishedStatus | None) -> bytes:
        """The Prometheus text exposition: Patroni's gauges for `status`, then haagent's own."""
        own: bytes = generate_latest(self.registry)
        if status is None:
            return own
        patroni: bytes = generate_latest(_StatusCollector(status, self.scope, self.name))
        return patroni + own
