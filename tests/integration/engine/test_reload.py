"""A real agent reloading its config (SIGHUP and POST /reload): REST security applies at once.

One node (etcd, the agent, PostgreSQL on 127.0.0.11).  Adding
`restapi.authentication` and an allowlist closes the changing endpoints; rotating
the password makes the old one fail and the new one work; a bad file changes
nothing; settings read only at start are named as needing a restart.
"""

from __future__ import annotations

import base64
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from haagent_lab.lab.cluster import LabCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def call(lab: LabCluster, method: str, path: str, password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(lab.nodes["node1"].api_url + path, method=method)
    if password is not None:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def probe(lab: LabCluster, password: str | None = None) -> int:
    """A harmless changing request: 404 (nothing scheduled) when let through."""
    return call(lab, "DELETE", "/switchover", password)[0]


def rewrite(lab: LabCluster, change: Callable[[dict[str, Any]], None]) -> None:
    node = lab.nodes["node1"]
    config = lab.node_config(node)
    change(config)
    node.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def hup(lab: LabCluster) -> None:
    agent = lab.nodes["node1"].agent
    assert agent is not None
    agent.send_signal(signal.SIGHUP)


def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def test_a_reload_applies_rest_security_and_rotates_the_password(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory(names=("node1",), hosts=("127.0.0.11",))
    lab.start(timeout=120)
    agent = lab.nodes["node1"].agent
    assert agent is not None
    assert probe(lab) == 404  # open: no authentication configured

    def secure(password: str, allowlist: list[str]) -> Callable[[dict[str, Any]], None]:
        def change(config: dict[str, Any]) -> None:
            config["restapi"]["authentication"] = {"username": "admin", "password": password}
            config["restapi"]["allowlist"] = allowlist

        return change

    rewrite(lab, secure("first-pw", ["127.0.0.0/8"]))
    hup(lab)
    until(lambda: probe(lab) == 401, "the changing endpoints ask for a password")
    assert probe(lab, "first-pw") == 404
    assert "applied restapi.authentication, restapi.allowlist" in agent.log_tail(50)

    rewrite(lab, secure("second-pw", ["127.0.0.0/8"]))
    hup(lab)
    until(lambda: probe(lab, "first-pw") == 401, "the old password is refused")
    assert probe(lab, "second-pw") == 404

    # POST /reload answers what it applied and what needs a restart.
    def parameters(config: dict[str, Any]) -> None:
        secure("second-pw", ["127.0.0.0/8"])(config)
        config["postgresql"]["parameters"]["work_mem"] = "8MB"
        config["tags"] = {"rack": "r2"}

    rewrite(lab, parameters)
    code, text = call(lab, "POST", "/reload", "second-pw")
    assert code in (200, 202), text
    assert "applied tags" in text
    assert "postgresql.parameters changed and need a restart" in text

    # A broken file changes nothing.
    lab.nodes["node1"].config_path.write_text("restapi: [\n")
    code, text = call(lab, "POST", "/reload", "second-pw")
    assert "reload refused" in text
    assert probe(lab, "second-pw") == 404 and probe(lab) == 401

    # The allowlist applies too: this client is no longer in it.
    rewrite(lab, secure("second-pw", ["10.0.0.0/8"]))
    hup(lab)
    until(lambda: probe(lab, "second-pw") == 403, "the allowlist refuses 127.0.0.1")
    assert lab.nodes["node1"].api("/primary")[0] == 200  # health checks stay open
