"""The alert rules in prometheus/ name only metrics haagent exports (the rules themselves
are tested by `promtool test rules`, run by dev/test)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import yaml

from haagent.api.metrics import Metrics
from haagent_lab.fake_api import (
    lagging_replica_status,
    primary_status,
    replica_status,
)

RULES = Path(__file__).resolve().parents[3] / "prometheus" / "haagent-alerts.yml"
METRIC = re.compile(r"\b((?:haagent|patroni)_[a-z_]+)\b")


def exported() -> set[str]:
    metrics = Metrics(scope="batman", name="node1")
    statuses = (primary_status(), replica_status("node2"), lagging_replica_status())
    text = b"".join(metrics.render(s) for s in statuses).decode()
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] not in "#"}


def test_every_metric_an_alert_reads_is_exported() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    names = {m for rule in rules for m in METRIC.findall(rule["expr"])}
    assert len(rules) == 6 and "haagent_replication_lag_bytes" in names
    assert names - exported() == set()


def test_a_replica_exports_its_lag_and_the_leaderless_time() -> None:
    status = lagging_replica_status()
    text = Metrics(scope="batman", name=status.name).render(status).decode()
    lag = re.search(r"^haagent_replication_lag_bytes\{.*\} (\S+)$", text, re.M)
    assert lag is not None and float(lag.group(1)) == 32 * 1024 * 1024
    assert re.search(r"^haagent_leaderless_since_timestamp_seconds\{.*\} 0.0$", text, re.M)
    alone = replace(status, leaderless_since=1_764_518_400.0)
    text = Metrics(scope="batman", name=status.name).render(alone).decode()
    assert re.search(
        r"^haagent_leaderless_since_timestamp_seconds\{.*\} 1.7645184e\+09$", text, re.M
    )
