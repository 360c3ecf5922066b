"""Every read endpoint over HTTP: codes for GET, HEAD and OPTIONS on a primary, replicas
and a demoted node; lag and tag filters; status changes; the other documents."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from haagent.dcs.errors import DCSUnavailable
from haagent.dcs.events import ClusterEvent, EventsRead
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import (
    demoted_status,
    lagging_replica_status,
    primary_status,
    replica_status,
)

StartApi = Any  # the start_api fixture (tests/integration/api/conftest.py)

HEALTH_PATHS = [
    "/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/replica",
    "/read-only", "/health", "/sync", "/async", "/liveness", "/readiness",
]  # fmt: skip

NODES: dict[str, PublishedStatus] = {
    "primary": primary_status(),
    "sync replica": replica_status("node2"),
    "async replica": replica_status("node3"),
    "demoted": demoted_status(),
}
# The code of each path in HEALTH_PATHS, per node.
EXPECTED = {
    "primary": [200, 200, 200, 200, 200, 503, 503, 200, 200, 503, 503, 200, 200],
    "sync replica": [503, 503, 503, 503, 503, 503, 200, 200, 200, 200, 503, 200, 200],
    "async replica": [503, 503, 503, 503, 503, 503, 200, 200, 200, 503, 200, 200, 200],
    "demoted": [503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 503],
}


@pytest.mark.parametrize("node", list(NODES))
async def test_health_codes_for_get_head_options(start_api: StartApi, node: str) -> None:
    api = await start_api(NODES[node])
    for path, code in zip(HEALTH_PATHS, EXPECTED[node], strict=True):
        got = await api.call("GET", path)
        assert got.status == code, f"GET {path} on {node}"
        assert got.headers["Content-Type"] == "application/json"
        document = json.loads(got.body)
        assert document["role"] == NODES[node].role
        assert document["patroni"]["name"] == NODES[node].name
        for method in ("HEAD", "OPTIONS"):
            got = await api.call(method, path)
            assert got.status == code, f"{method} {path} on {node}"
            assert got.body == b""


async def test_get_root_carries_the_reference_fields_and_the_reason(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    doc = json.loads((await api.call("GET", "/")).body)
    for key in ("state", "role", "server_version", "postmaster_start_time", "timeline", "xlog",
                "cluster_unlocked", "dcs_last_seen", "database_system_identifier", "replication",
                "pause", "tags", "patroni"):  # fmt: skip
        assert key in doc, key
    assert doc["haagent"]["reason_code"] == "leader_renewed"
    assert doc["haagent"]["reason_text"] == "renewed the leader key"
    patroni = await api.call("GET", "/patroni")
    assert patroni.status == 200 and json.loads(patroni.body) == doc


async def test_patroni_is_200_on_any_node(start_api: StartApi) -> None:
    api = await start_api(demoted_status())
    assert (await api.call("GET", "/patroni")).status == 200
    assert (await api.call("HEAD", "/patroni")).status == 200


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/replica", 200),
        ("/replica?lag=16MB", 503),
        ("/replica?lag=33554432", 200),
        ("/replica?lag=64MB", 200),
        ("/replica?lag=1024kB", 503),
        ("/replica?lag=rubbish", 200),
        ("/async?lag=10MB", 503),
        ("/read-only?lag=10MB", 503),
        ("/readiness", 503),
        ("/readiness?lag=1GB", 200),
        ("/replica?tag_dc=east", 200),
        ("/replica?tag_dc=west", 503),
        ("/replica?tag_dc=east&lag=1GB", 200),
        ("/replica?tag_missing=x", 503),
        ("/primary?tag_dc=west", 503),
    ],
)
async def test_lag_and_tag_filters(start_api: StartApi, path: str, code: int) -> None:
    api = await start_api(lagging_replica_status())
    for method in ("GET", "HEAD", "OPTIONS"):
        assert (await api.call(method, path)).status == code, f"{method} {path}"


async def test_tag_filters_ignored_on_the_leader(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    for path in ("/primary?tag_dc=west", "/leader?tag_x=y", "/?tag_a=b", "/read-write?tag_a=b"):
        assert (await api.call("OPTIONS", path)).status == 200, path


async def test_a_demoting_node_stops_answering_200_at_once(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    for _ in range(20):  # warm the cache
        assert (await api.call("OPTIONS", "/primary")).status == 200
    api.publish(replace(primary_status(), role="demoted", reason_code="demoting"))
    got = await api.call("GET", "/primary")
    assert got.status == 503
    assert json.loads(got.body)["role"] == "demoted"
    assert (await api.call("OPTIONS", "/master")).status == 503
    api.publish(demoted_status())
    assert (await api.call("HEAD", "/read-write")).status == 503


async def test_a_primary_stops_answering_200_when_its_lease_lapses(start_api: StartApi) -> None:
    status = primary_status(leader_expires_at=time.monotonic() + 0.3)
    api = await start_api(status)
    assert (await api.call("OPTIONS", "/primary")).status == 200
    assert (await api.call("OPTIONS", "/leader")).status == 200
    await asyncio.sleep(0.35)  # the loop published nothing new: the lease lapsed anyway
    assert (await api.call("OPTIONS", "/primary")).status == 503
    assert (await api.call("OPTIONS", "/leader")).status == 503


async def test_liveness_fails_when_the_loop_stops(start_api: StartApi) -> None:
    stale = primary_status(loop_finished_at=time.monotonic() - 31)
    api = await start_api(stale)
    # the server just started, which counts as a cycle
    assert (await api.call("GET", "/liveness")).status == 200
    api.server._started_at = time.monotonic() - 31
    api.publish(replace(stale, loop_count=2))
    assert (await api.call("GET", "/liveness")).status == 503
    api.publish(replace(stale, loop_finished_at=time.monotonic()))
    assert (await api.call("GET", "/liveness")).status == 200


async def test_cluster_history_config_failsafe(start_api: StartApi) -> None:
    api = await start_api(replica_status())
    cluster = await api.call("GET", "/cluster")
    assert cluster.status == 200
    members = json.loads(cluster.body)["members"]
    assert [(m["name"], m["role"]) for m in members] == [
        ("node1", "leader"),
        ("node2", "sync_standby"),
        ("node3", "replica"),
    ]
    for m in members:
        assert {"name", "role", "state", "api_url", "host", "port", "timeline"} <= set(m)
    history = await api.call("GET", "/history")
    assert json.loads(history.body)[0][:3] == [1, 0x3000000, "no recovery target specified"]
    config = await api.call("GET", "/config")
    assert json.loads(config.body)["ttl"] == 30
    assert (await api.call("GET", "/failsafe")).status == 502
    for path in ("/cluster", "/history", "/config", "/metrics", "/openapi.json"):
        head = await api.call("HEAD", path)
        assert head.status == 200 and head.body == b"", path
    no_config = replica_status()
    api.publish(replace(no_config, cluster=replace(no_config.cluster, config=None)))
    assert (await api.call("GET", "/config")).status == 502


async def test_metrics_endpoint(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    got = await api.call("GET", "/metrics")
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("text/plain")
    assert 'patroni_primary{name="node1",scope="demo"} 1.0' in got.text
    assert "haagent_loop_duration_seconds_bucket" in got.text
    api.server.metrics.record_decision("leader_renewed")
    got = await api.call("GET", "/metrics")
    assert 'haagent_decision_total{reason="leader_renewed"} 1.0' in got.text


async def test_openapi_document_lists_every_endpoint(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    got = await api.call("GET", "/openapi.json")
    assert got.status == 200
    doc = json.loads(got.body)
    assert doc["openapi"].startswith("3.")
    for path in [*HEALTH_PATHS, "/patroni", "/cluster", "/history", "/config", "/metrics",
                 "/switchover", "/failover", "/restart", "/reinitialize", "/reload",
                 "/failsafe", "/events"]:  # fmt: skip
        assert path in doc["paths"], path
    assert {"post", "delete"} <= set(doc["paths"]["/switchover"])
    assert {"get", "patch", "put"} <= set(doc["paths"]["/config"])


async def test_events_are_read_from_etcd_filtered_and_refused_when_malformed(
    start_api: StartApi,
) -> None:
    api = await start_api(primary_status())
    api.controller.history = EventsRead(
        tuple(
            ClusterEvent(m, seq, t, "role", "leader_race", f"event {seq}", 2, 100)
            for m, seq, t in (("node2", 0, 1_764_518_400.0), ("node1", 0, 1_764_518_300.0))
        ),
    )
    got = await api.call("GET", "/events")
    assert got.status == 200
    events = json.loads(got.body)["events"]
    assert [e["member"] for e in events] == ["node1", "node2"]
    assert events[0]["time"] == "2025-11-30T15:58:20.000+00:00"
    only = json.loads((await api.call("GET", "/events?member=node2")).body)["events"]
    assert [e["member"] for e in only] == ["node2"]
    recent = json.loads((await api.call("GET", "/events?since=1h")).body)["events"]
    assert recent == []  # both are a year old
    assert (await api.call("GET", "/events?since=yesterday")).status == 400
    assert (await api.call("GET", "/events?member=../x")).status == 400
    assert (await api.call("HEAD", "/events")).status == 200
    api.controller.history_error = DCSUnavailable("no endpoint answered")
    got = await api.call("GET", "/events")
    assert got.status == 503 and b"etcd cannot be reached" in got.body


async def test_unknown_paths_and_methods(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    assert (await api.call("GET", "/nowhere")).status == 404
    assert (await api.call("POST", "/nowhere")).status == 404
    wrong = await api.call("POST", "/primary")
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
    wrong = await api.call("GET", "/switchover")
    assert wrong.status == 405 and "POST" in wrong.headers["Allow"]
    assert "GET" not in wrong.headers["Allow"]
    options = await api.call("OPTIONS", "/restart")
    assert options.status == 200 and "DELETE" in options.headers["Allow"]
    assert (await api.call("DELETE", "/config")).status == 405


async def test_a_status_failure_fails_closed(start_api: StartApi) -> None:
    api = await start_api(primary_status())

    def broken() -> PublishedStatus:
        raise RuntimeError("not published yet")

    api.controller.status = broken
    for method in ("GET", "HEAD", "OPTIONS"):
        assert (await api.call(method, "/primary")).status == 503
    assert (await api.call("GET", "/cluster")).status == 503


async def test_the_first_of_repeated_parameters_counts(start_api: StartApi) -> None:
    api = await start_api(lagging_replica_status())
    assert (await api.call("GET", "/replica?lag=1MB&lag=1GB")).status == 503
    assert (await api.call("GET", "/replica?lag=1GB&lag=1MB")).status == 200
