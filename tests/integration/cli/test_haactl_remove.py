"""`haactl remove` on a real cluster (its own cluster: the test deletes its keys)."""

from __future__ import annotations

import pytest
from haactl_lab import SCOPE, Haactl

from haagent_lab.lab.cluster import LabCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_remove_needs_each_confirmation_then_deletes_every_key(
    ready: LabCluster, haactl: Haactl
) -> None:
    leader = ready.leader()
    assert leader is not None
    wrong_leader = haactl("remove", input=f"{SCOPE}\nYes I am aware\nnode9\n")
    assert wrong_leader.code == 1, wrong_leader.text
    assert "This cluster currently is healthy" in wrong_leader.out
    assert "nothing was removed" in wrong_leader.err
    wrong_name = haactl("remove", input="other\n")
    assert wrong_name.code == 1 and "do not match" in wrong_name.err
    assert haactl("list").code == 0
    assert ready.leader() == leader

    # Stop the agents first, or they write their keys back; the replicas first, so the
    # leader has nobody to hand over to and keeps its name in the key until it stops.
    for name in sorted(ready.nodes, key=lambda n: n == leader):
        ready.stop_agent(name)
    run = haactl("remove", SCOPE, input=f"{SCOPE}\nYes I am aware\n{leader}\n")
    assert run.code == 0, run.text
    assert f"Cluster {SCOPE} removed from etcd (/service/{SCOPE}/)" in run.out
    gone = haactl("list")
    assert gone.code == 1
    assert f"has no keys under /service/{SCOPE}/" in gone.err
