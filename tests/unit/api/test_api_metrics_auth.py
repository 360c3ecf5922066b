"""Prometheus metrics with Patroni's names, basic auth, the allowlist and the TLS context."""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import replace
from pathlib import Path

import pytest

from haagent.api import auth
from haagent.api.metrics import Metrics, epoch, version_number
from haagent.config.model import Credentials, RestApiSettings
from haagent.postgres.model import ReplicationSlot
from haagent_lab.fake_api import LEADER_LSN, primary_status, replica_status

PATRONI_NAMES = [
    "patroni_version", "patroni_postgres_running", "patroni_postmaster_start_time",
    "patroni_primary", "patroni_xlog_location", "patroni_standby_leader", "patroni_replica",
    "patroni_sync_standby", "patroni_xlog_received_location", "patroni_xlog_replayed_location",
    "patroni_xlog_replayed_timestamp", "patroni_xlog_paused", "patroni_postgres_server_version",
    "patroni_cluster_unlocked", "patroni_failsafe_mode_is_active", "patroni_postgres_timeline",
    "patroni_dcs_last_seen", "patroni_pending_restart", "patroni_is_paused",
    "patroni_postgres_streaming", "patroni_postgres_in_archive_recovery", "patroni_postgres_state",
]  # fmt: skip


def _samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _value(samples: dict[str, float], name: str) -> float:
    return samples[f'{name}{{name="node1",scope="demo"}}']


def test_patroni_metrics_of_a_primary() -> None:
    metrics = Metrics(scope="demo", name="node1")
    text = metrics.render(primary_status()).decode()
    for name in PATRONI_NAMES:
        assert re.search(rf'^{name}\{{name="node1",scope="demo"\}} ', text, re.M), name
        assert f"# TYPE {name} gauge" in text
    samples = _samples(text)
    assert _value(samples, "patroni_primary") == 1
    assert _value(samples, "patroni_replica") == 0
    assert _value(samples, "patroni_xlog_location") == LEADER_LSN
    assert _value(samples, "patroni_postgres_server_version") == 150006
    assert _value(samples, "patroni_postgres_timeline") == 2
    assert _value(samples, "patroni_version") == 40100
    assert _value(samples, "patroni_postgres_state") == 5
    assert _value(samples, "patroni_dcs_last_seen") == 1727169750
    assert _value(samples, "patroni_postmaster_start_time") == pytest.approx(1727169750.123456)


def test_patroni_metrics_of_a_sync_replica() -> None:
    metrics = Metrics(scope="demo", name="node2")
    samples = _samples(metrics.render(replica_status("node2")).decode())

    def value(name: str) -> float:
        return samples[f'{name}{{name="node2",scope="demo"}}']

    assert value("patroni_primary") == 0
    assert value("patroni_replica") == 1
    assert value("patroni_sync_standby") == 1
    assert value("patroni_xlog_location") == 0
    assert value("patroni_xlog_replayed_location") == LEADER_LSN
    assert value("patroni_postgres_streaming") == 1


def test_slot_lag_in_bytes_and_lost_slots_per_slot() -> None:
    slots = (
        ReplicationSlot("node2", "physical", restart_lsn=LEADER_LSN - 100, wal_status="reserved"),
        ReplicationSlot("cdc", "logical", "app", "pgoutput", confirmed_flush_lsn=LEADER_LSN - 7,
                        restart_lsn=LEADER_LSN - 900, wal_status="lost"),
        ReplicationSlot("pg_basebackup_1", "physical", temporary=True, restart_lsn=1),
    )  # fmt: skip
    status = primary_status()
    status = replace(status, postgres=replace(status.postgres, slots=slots))
    samples = _samples(Metrics(scope="demo", name="node1").render(status).decode())
    labels = 'name="node1",scope="demo",slot="{}",type="{}"'
    lag = "haagent_replication_slot_lag_bytes{{" + labels + "}}"
    lost = "haagent_replication_slot_lost{{" + labels + "}}"
    assert samples[lag.format("node2", "physical")] == 100
    assert samples[lag.format("cdc", "logical")] == 7  # a logical slot: its confirmed position
    assert samples[lost.format("cdc", "logical")] == 1
    assert samples[lost.format("node2", "physical")] == 0
    assert not any("pg_basebackup_1" in key for key in samples)  # temporary: not reported


def test_haagent_own_metrics() -> None:
    metrics = Metrics(scope="demo", name="node1")
    metrics.record_decision("leader_renewed")
    metrics.record_decision("leader_renewed")
    metrics.record_decision("")
    metrics.observe_loop(0.02)
    metrics.observe_etcd_call("txn", 0.003)
    samples = _samples(metrics.render(None).decode())
    assert samples['haagent_decision_total{reason="leader_renewed"}'] == 2
    assert samples['haagent_decision_total{reason="none"}'] == 1
    assert samples["haagent_loop_duration_seconds_count"] == 1
    assert samples['haagent_etcd_call_seconds_bucket{le="0.005",op="txn"}'] == 1
    # its own registry: a second instance starts from zero and does not clash
    other = Metrics(scope="demo", name="node1")
    assert "haagent_decision_total{" not in other.render(None).decode()


def test_version_and_epoch_helpers() -> None:
    assert version_number("4.1.0") == 40100
    assert version_number("0.1") == 100
    assert epoch("2024-09-24 10:00:00+00") == 1727172000.0
    assert epoch(None) == 0.0
    assert epoch("garbage") == 0.0
    assert epoch("2024-09-24 10:00:00") == 0.0


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth() -> None:
    creds = Credentials("admin", "s3cret:with:colons")
    assert auth.check_basic_auth(_basic("admin", "s3cret:with:colons"), creds) is None
    assert auth.check_basic_auth(_basic("admin", "wrong"), creds) == "not authenticated"
    assert auth.check_basic_auth(_basic("root", "s3cret:with:colons"), creds) == "not authenticated"
    assert auth.check_basic_auth(None, creds) == "no Authorization header received"
    assert auth.check_basic_auth("Bearer abc", creds) is not None
    assert auth.check_basic_auth("Basic !!!", creds) is not None
    assert auth.check_basic_auth("Basic " + base64.b64encode(b"admin").decode(), creds) is not None


async def test_allowlist() -> None:
    networks = await auth.resolve_allowlist(["127.0.0.1", "10.0.0.0/8", "::1", "localhost"])
    assert ipaddress.ip_network("10.0.0.0/8") in networks
    assert auth.allowed("127.0.0.1", networks)
    assert auth.allowed("10.1.2.3", networks)
    assert auth.allowed("::ffff:10.1.2.3", networks)  # IPv4-mapped
    assert auth.allowed("::1", networks)
    assert not auth.allowed("192.168.1.1", networks)
    assert not auth.allowed(None, networks)
    assert not auth.allowed("not-an-ip", networks)
    assert auth.member_hosts(["http://127.0.0.12:8008/patroni", "bad", "http://[::1]:80/"]) == [
        "127.0.0.12",
        "::1",
    ]


def test_tls_context_errors(tmp_path: Path) -> None:
    assert auth.server_ssl_context(RestApiSettings()) is None
    missing = RestApiSettings(certfile=tmp_path / "none.pem")
    with pytest.raises(auth.TlsSettingsError, match="certfile"):
        auth.server_ssl_context(missing)
