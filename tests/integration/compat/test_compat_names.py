"""A second agent started with a name a running member uses refuses to start, as in Patroni
(real etcd and PostgreSQL); the same node restarted at once is not refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LabCluster, LabNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def intruder_named_node1(node: LabNode, config: dict[str, Any]) -> None:
    if node.name == "intruder":  # its own addresses, ports and data directory
        config["name"] = "node1"


def test_a_name_in_use_is_refused(lab_factory: Callable[..., LabCluster]) -> None:
    lab = lab_factory(
        names=("node1", "intruder"),
        hosts=("127.0.0.11", "127.0.0.12"),
        configure=intruder_named_node1,
    )
    processes.make_dir(lab.base, None, 0o755)
    lab.etcd.start()
    lab.write_configs()
    node1, intruder = lab.nodes["node1"], lab.nodes["intruder"]
    lab.start_agent("node1")
    lab.wait_for(lambda: node1.api("/primary")[0] == 200, "node1 to lead", 120)

    agent = lab.start_agent("intruder")
    assert agent.popen.wait(timeout=60) == 2, agent.log_tail()
    log = agent.log_path.read_text()
    refusals = [line for line in log.splitlines() if "already a running member" in line]
    assert len(refusals) == 1, log
    assert (
        f"named 'node1' in this cluster (its REST API answers at {node1.api_url}/liveness)"
        in (refusals[0])
    )
    assert not intruder.data_dir.exists()  # nothing started
    code, cluster = node1.api("/cluster")
    assert code == 200 and [m["name"] for m in cluster["members"]] == ["node1"]
    assert cluster["members"][0]["api_url"] == f"{node1.api_url}/patroni"

    # The same node, restarted at once: its member key is still there, but nothing answers
    # at its REST API any more, so the name is its own.
    lab.kill_agent("node1")
    again = lab.start_agent("node1")
    lab.wait_for(lambda: node1.api("/primary")[0] == 200, "node1 to lead again", 120)
    assert again.alive()
