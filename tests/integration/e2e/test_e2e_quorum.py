"""Quorum commit end to end: three agents on real etcd and PostgreSQL with
`synchronous_mode: quorum` and `synchronous_node_count: 1`, under a writer.

The primary runs `ANY 1 (the two others)` and the `sync` key names both standbys as voters
with quorum 1.  The primary's node is then lost (agent and postmaster SIGKILLed) twice in a
row: each time a standby takes over only with the votes the key asks for, the old primary
comes back as a replica, the quorum state is rebuilt around the new primary, and no
acknowledged write is missing.  One lab for every check (CI time).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import psycopg
import pytest

from haagent.config.model import Address
from haagent_lab.lab.cluster import LAB_PASSWORD, LabCluster
from haagent_lab.lab.processes import ProcessError
from haagent_lab.lab.workload import Writer, multi_host_dsn

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUORUM = {
    "ttl": 10,
    "loop_wait": 2,
    "retry_timeout": 3,
    "synchronous_mode": "quorum",
    "synchronous_node_count": 1,
}
# Per the health table: a quorum standby answers /quorum and /read-only-quorum, and is
# neither a sync nor an async standby; the primary answers /read-only-quorum only.
PRIMARY_CODES = {"/quorum": 503, "/read-only-quorum": 200, "/sync": 503, "/async": 503}
STANDBY_CODES = {"/quorum": 200, "/read-only-quorum": 200, "/sync": 503, "/async": 503}


def quorum_state(lab: LabCluster) -> tuple[str, str, list[str]] | None:
    """(leader, its synchronous_standby_names, the members /cluster shows as quorum
    standbys) once the primary names both others as `ANY 1`; else None."""
    leader = lab.leader()
    if leader is None:
        return None
    code, body = lab.nodes[leader].api("/cluster")
    if code != 200 or not isinstance(body, dict):
        return None
    voters = sorted(m["name"] for m in body.get("members", []) if m.get("role") == "quorum_standby")
    with psycopg.connect(lab.nodes[leader].dsn, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute("SHOW synchronous_standby_names").fetchone()
    value = str(row[0]) if row else ""
    others = sorted(n for n in lab.nodes if n != leader)
    expected = "ANY 1 (" + ", ".join(f'"{n}"' for n in others) + ")"
    return (leader, value, voters) if value == expected and voters == others else None


def wait_quorum(lab: LabCluster, timeout: float = 60.0) -> str:
    found: list[tuple[str, str, list[str]]] = []

    def ready() -> bool:
        state = quorum_state(lab)
        if state is not None:
            found.append(state)
        return state is not None

    lab.wait_for(ready, "ANY 1 of the two standbys, both voters of the sync key", timeout)
    return found[-1][0]


def test_quorum_commit_survives_repeated_leader_loss(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory(dynamic=QUORUM)
    lab.start(timeout=120)
    leader = wait_quorum(lab)

    def answers(node: str) -> dict[str, int]:
        return {path: lab.nodes[node].api(path)[0] for path in PRIMARY_CODES}

    for node in lab.nodes:
        codes = PRIMARY_CODES if node == leader else STANDBY_CODES
        # A standby publishes the sync key as of its last loop: within a loop_wait.
        with contextlib.suppress(ProcessError):
            lab.wait_for(lambda: answers(node) == codes, f"{node}'s health checks", 10)  # noqa: B023
        assert answers(node) == codes, node
        body = lab.nodes[node].api("/")[1]
        assert body.get("quorum_standby") is (None if node == leader else True), body
        assert "sync_standby" not in body, body

    dsn = multi_host_dsn(
        [Address(n.host, n.pg_port) for n in lab.nodes.values()], "postgres", LAB_PASSWORD
    )
    writer = Writer(dsn)
    writer.start()
    try:
        for round_ in range(2):
            time.sleep(1.0)  # writes acknowledged under ANY 1
            old = leader
            t0 = time.monotonic()
            lab.kill_agent(old)
            lab.kill_postmaster(old)
            lab.wait_for(lambda: lab.leader() not in (None, old), "a new leader", 60)  # noqa: B023
            print(f"round {round_}: {old} lost, write downtime {writer.downtime_since(t0):.3f}s")
            lab.start_agent(old)
            lab.wait_healthy(90)
            leader = wait_quorum(lab)
            assert leader != old
            time.sleep(0.5)
            assert writer.acked[-1][1] > time.monotonic() - 1.0, "writes did not resume"
    finally:
        writer.stop()
    assert len(writer.acked) > 100
    assert writer.lost(dsn) == []
