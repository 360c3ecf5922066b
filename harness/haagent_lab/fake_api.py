"""An in-memory `Controller` and ready-made published statuses, for tests and benchmarks.

`FakeController` publishes whatever status it is given, records the requests
it receives and answers each with a configurable `RequestResult`.  The status
builders make a consistent three-node cluster (node1 leader, node2 sync
standby, node3 async) seen from one node, as a primary, a replica, a lagging
replica, a demoted node, and so on.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from haagent.config.dynamic import merge_patch
from haagent.config.model import DynamicConfig
from haagent.dcs.events import EventsRead, encode_event, event_key, merge_events
from haagent.dcs.kv import KeyValue
from haagent.dcs.model import (
    ClusterStatus,
    ClusterView,
    Failover,
    HistoryEntry,
    Leader,
    Member,
    SyncState,
)
from haagent.engine.requests import ConfigWriteResult, Request, RequestResult
from haagent.engine.status import PublishedStatus
from haagent.postgres.model import PostgresStatus, ReplicationConnection

SCOPE = "demo"
LEADER_LSN = 0x5000060
SYSTEM_ID = "7268616322854375442"

CONFIG_RAW: Mapping[str, Any] = {
    "ttl": 30,
    "loop_wait": 10,
    "retry_timeout": 10,
    "maximum_lag_on_failover": 1048576,
    "synchronous_mode": True,
    "postgresql": {
        "use_pg_rewind": True,
        "use_slots": True,
        "parameters": {"max_connections": 100},
    },
}


def _member(name: str, role: str, port: int, **fields: Any) -> Member:
    host = f"127.0.0.1{name[-1]}"
    return Member(
        name=name,
        conn_url=f"postgres://{host}:{port}/postgres",
        api_url=f"http://{host}:8008/patroni",
        state="running",
        role=role,
        version="4.1.0",
        timeline=2,
        **fields,
    )


def cluster_view(*, leader: str | None = "node1", optime: int | None = LEADER_LSN) -> ClusterView:
    """node1 primary, node2 sync standby, node3 async replica (tagged `dc: east`)."""
    members = {
        "node1": _member("node1", "primary", 5432, xlog_location=LEADER_LSN),
        "node2": _member(
            "node2",
            "replica",
            5433,
            replication_state="streaming",
            receive_lsn=LEADER_LSN,
            replay_lsn=LEADER_LSN,
        ),
        "node3": _member(
            "node3",
            "replica",
            5434,
            replication_state="streaming",
            receive_lsn=LEADER_LSN - 4096,
            replay_lsn=LEADER_LSN - 8192,
            tags={"dc": "east"},
        ),
    }
    return ClusterView(
        revision=42,
        initialize=SYSTEM_ID,
        config=DynamicConfig(synchronous_mode=True, raw=dict(CONFIG_RAW)),
        config_revision=7,
        leader=Leader(leader, lease_id=1, mod_revision=40) if leader else None,
        members=members,
        sync=SyncState(leader="node1", sync_standby=("node2",)),
        failover=None,
        history=(
            HistoryEntry(
                1, 0x3000000, "no recovery target specified", "2024-09-24T09:22:33+00:00", "node1"
            ),
        ),
        status=ClusterStatus(optime=optime),
    )


def primary_status(name: str = "node1", **overrides: Any) -> PublishedStatus:
    postgres = PostgresStatus(
        data_dir_exists=True,
        data_dir_initialized=True,
        running=True,
        accepting=True,
        in_recovery=False,
        timeline=2,
        system_identifier=SYSTEM_ID,
        server_version=150006,
        postmaster_start_time="2024-09-24 09:22:30.123456+00:00",
        write_lsn=LEADER_LSN,
        replication=(
            ReplicationConnection("replicator", "node2", "127.0.0.12", "streaming", "sync", 1),
            ReplicationConnection("replicator", "node3", "127.0.0.13", "streaming", "async", 0),
        ),
    )
    status = PublishedStatus(
        scope=SCOPE,
        name=name,
        role="primary",
        state="running",
        holds_leader_key=True,
        postgres=postgres,
        cluster=cluster_view(leader=name),
        config=DynamicConfig(synchronous_mode=True, raw=dict(CONFIG_RAW)),
        tags={"clonefrom": True},
        dcs_last_seen=1727169750.5,
        loop_finished_at=0.0,
        loop_count=1,
        reason_code="leader_renewed",
        reason_text="renewed the leader key",
        api_url="http://127.0.0.11:8008/patroni",
        conn_url="postgres://127.0.0.11:5432/postgres",
        version="4.1.0",
    )
    return replace(status, **overrides)


def replica_status(
    name: str = "node2", *, replay_lsn: int = LEADER_LSN, **overrides: Any
) -> PublishedStatus:
    postgres = PostgresStatus(
        data_dir_exists=True,
        data_dir_initialized=True,
        running=True,
        accepting=True,
        in_recovery=True,
        timeline=2,
        system_identifier=SYSTEM_ID,
        server_version=150006,
        postmaster_start_time="2024-09-24 09:23:00+00:00",
        receive_lsn=replay_lsn,
        replay_lsn=replay_lsn,
        replay_timestamp="2024-09-24 10:00:00+00:00",
        receiver_streaming=True,
        primary_conninfo_host="127.0.0.11",
    )
    tags = {"dc": "east"} if name == "node3" else {}
    status = PublishedStatus(
        scope=SCOPE,
        name=name,
        role="replica",
        state="running",
        holds_leader_key=False,
        postgres=postgres,
        cluster=cluster_view(),
        config=DynamicConfig(synchronous_mode=True, raw=dict(CONFIG_RAW)),
        tags=tags,
        dcs_last_seen=1727169750.5,
        loop_count=1,
        reason_code="following_leader",
        reason_text="following node1",
        version="4.1.0",
    )
    return replace(status, **overrides)


def lagging_replica_status(lag: int = 32 * 1024 * 1024, **overrides: Any) -> PublishedStatus:
    return replica_status("node3", replay_lsn=LEADER_LSN - lag, **overrides)


def demoted_status(**overrides: Any) -> PublishedStatus:
    """A former primary that demoted itself: it may still hold the key for an instant."""
    status = primary_status()
    postgres = replace(status.postgres, running=False, accepting=False)
    return replace(
        status,
        role="demoted",
        state="stopped",
        postgres=postgres,
        reason_code="demoted_lost_dcs",
        reason_text="demoted: etcd unreachable",
        **overrides,
    )


def scheduled_switchover(status: PublishedStatus, candidate: str = "node2") -> PublishedStatus:
    when = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    failover = Failover(leader="node1", candidate=candidate, scheduled_at=when)
    return replace(status, cluster=replace(status.cluster, failover=failover))


class FakeController:
    """A `Controller` that serves a status set by the test and records requests."""

    def __init__(self, status: PublishedStatus) -> None:
        self.current = status
        self.requests: list[Request] = []
        self.results: dict[type, RequestResult] = {}
        self.config: dict[str, Any] = dict(CONFIG_RAW)
        self.config_status = 200
        self.history = EventsRead(())
        self.history_error: Exception | None = None

    def publish(self, status: PublishedStatus) -> None:
        self.current = status

    def status(self) -> PublishedStatus:
        return self.current

    async def submit(self, request: Request) -> RequestResult:
        self.requests.append(request)
        return self.results.get(type(request), RequestResult(200, f"{type(request).__name__} done"))

    async def patch_config(self, patch: Mapping[str, Any]) -> ConfigWriteResult:
        if self.config_status != 200:
            return ConfigWriteResult(self.config_status, "config modification aborted")
        self.config = merge_patch(self.config, patch)
        return ConfigWriteResult(200, "written", self.config)

    async def replace_config(self, config: Mapping[str, Any]) -> ConfigWriteResult:
        if self.config_status != 200:
            return ConfigWriteResult(self.config_status, "config modification aborted")
        self.config = dict(config)
        return ConfigWriteResult(200, "written", self.config)

    async def events(self, *, member: str | None, since: float | None) -> EventsRead:
        if self.history_error is not None:
            raise self.history_error
        return merge_events(
            [
                KeyValue(b"/x/" + event_key(e.member, e.seq).encode(), encode_event(e), 1, 1)
                for e in self.history.events
            ],
            b"/x/", member=member, since=since,
        )  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class ApiClient:
    """Calls a running REST API, one connection per call (as HAProxy's checks do)."""

    base: str
    tls: ssl.SSLContext | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_host: str | None = None,
        **kwargs: Any,
    ) -> Reply:
        """`local_host` binds the client to that source address (127.0.0.x on loopback)."""
        connector = aiohttp.TCPConnector(
            ssl=ssl_context or self.tls or False,
            local_addr=(local_host, 0) if local_host else None,
        )
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.request(method, self.base + path, **kwargs) as response,
        ):
            body = await response.read()
            return Reply(response.status, dict(response.headers), body)
