"""Patroni's REST details on a real agent (etcd, PostgreSQL 15): reload, restart, tags."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from haagent_lab.lab.cluster import LabCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def post(url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_rest_details_as_patroni_answers_them(lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory(names=("node1",), hosts=("127.0.0.11",))
    node = lab.nodes["node1"]
    node.tags = {"clonefrom": False, "nostream": False, "noloadbalance": True, "rack": "r1"}
    lab.start(timeout=120)
    url = node.api_url

    # Tags: false boolean tags are left out of /patroni and of the member key.
    code, status = node.api("/patroni")
    assert code == 200 and status["tags"] == {"noloadbalance": True, "rack": "r1"}
    code, cluster = node.api("/cluster")
    assert code == 200 and cluster["members"][0]["tags"] == {"noloadbalance": True, "rack": "r1"}

    # POST /reload answers 202.
    code, text = post(url + "/reload")
    assert code == 202, text

    # restart_pending as a string, as patronictl and scripts send it.
    pid = node.postmaster_pid()
    code, text = post(url + "/restart", {"restart_pending": "True"})
    assert code == 503 and "no restart is pending" in text, text
    assert node.postmaster_pid() == pid
    code, text = post(url + "/restart", {"restart_pending": "False"})
    assert code == 200, text
    assert node.postmaster_pid() not in (None, pid)
    lab.wait_healthy(60)

    # A scheduled restart with a role is accepted, and its role checked when it is due.
    pid = node.postmaster_pid()
    when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    code, text = post(url + "/restart", {"schedule": when, "role": "replica"})
    assert code == 202, text
    lab.wait_for(
        lambda: "scheduled restart not done" in node.agent.log_tail(50) if node.agent else False,
        "the scheduled restart to be checked",
        30,
    )
    assert "role is primary, not replica" in (node.agent.log_tail(50) if node.agent else "")
    assert node.postmaster_pid() == pid
    when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    code, text = post(url + "/restart", {"schedule": when, "role": "primary"})
    assert code == 202, text
    lab.wait_for(lambda: node.postmaster_pid() not in (None, pid), "the scheduled restart", 60)
    lab.wait_healthy(60)
