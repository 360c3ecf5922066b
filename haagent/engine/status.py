"""The status the HA loop publishes after every cycle.

The REST API, the metrics and the CLI read only this: a health check is a
field lookup, never a query to PostgreSQL or etcd.  The loop publishes a new
value *before* it acts on a role change that makes the old one false (it
publishes "demoting" before it stops accepting writes), so `/primary` can
never answer 200 for a node that is demoting or has demoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from haagent.config.model import DynamicConfig
from haagent.dcs.model import ClusterView
from haagent.postgres.model import PostgresStatus


@dataclass(frozen=True)
class PublishedStatus:
    scope: str
    name: str
    # primary | replica | standby_leader | demoted | uninitialized
    role: str
    # a PgState value: running, starting, stopped, crashed, ...
    state: str
    holds_leader_key: bool
    postgres: PostgresStatus
    cluster: ClusterView
    config: DynamicConfig
    tags: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    # Wall-clock time (unix seconds) of the last successful etcd exchange, None if never.
    dcs_last_seen: float | None = None
    dcs_ok: bool = True
    # Monotonic time at which the last HA cycle finished, and how many cycles ran.
    loop_finished_at: float = 0.0
    # The same instant as unix seconds (for metrics: "no cycle for 2 x loop_wait").
    loop_finished_wall: float = 0.0
    # Unix seconds since which this node has seen no leader key; None while there is one.
    leaderless_since: float | None = None
    loop_count: int = 0
    loop_duration: float = 0.0
    # The last decision: a stable code (e.g. "leader_renewed") and a sentence for people.
    reason_code: str = ""
    reason_text: str = ""
    pending_restart: bool = False
    scheduled_restart: Mapping[str, Any] | None = None
    watchdog: str = "off"
    # watchdog mode is required and the watchdog is unusable: this node may not lead.
    watchdog_failed: bool = False
    # pre_promote cancelled this node's promotion less than ttl ago: it does not race.
    pre_promote_failed: bool = False
    api_url: str = ""
    conn_url: str = ""
    version: str = ""
    # Monotonic time at which this node's hold on the leader key lapses (its lease
    # expiry as this node computes it); None when it does not hold the key or does
    # not know.  `/primary` and `/leader` answer 503 from that instant on, even if
    # the loop is stuck and publishes nothing new.
    leader_expires_at: float | None = None
    # True while the leader keeps running without etcd because every member
    # acknowledged it (Patroni's DCS failsafe mode).
    failsafe_active: bool = False

    @property
    def is_primary(self) -> bool:
        """True only while this node holds the key and runs PostgreSQL read-write."""
        return (
            self.role == "primary"
            and self.holds_leader_key
            and self.postgres.running
            and not self.postgres.in_recovery
        )

    @property
    def is_running_replica(self) -> bool:
        return self.role == "replica" and self.postgres.running and self.postgres.in_recovery
