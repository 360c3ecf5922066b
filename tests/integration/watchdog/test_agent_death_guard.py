"""End to end, watchdog off: the agent-death guard on a real three-node lab.

Each agent runs one guard (`python -m haagent.watchdog.guard`), armed while the agent
holds the leader key and runs the primary.  A sampler asks every node's PostgreSQL,
through its unix socket, `SELECT NOT pg_is_in_recovery()` every 100 ms.

- The leader's agent SIGKILLed: its guard stops PostgreSQL within seconds, long
  before the key expires; a replica is promoted after the ttl; no sample ever sees
  two writable nodes; the agent started again rejoins as a replica.
- The leader's agent SIGKILLed while the cluster is paused: PostgreSQL keeps running
  (the agent never touches it in maintenance mode, nor does its guard).
- `watchdog.agent_death_guard: false`: no guard, and PostgreSQL outlives its agent
  as before; the restarted agent adopts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from haagent.watchdog.guard import process_alive
from haagent.watchdog.guard_client import guard_pids
from haagent_lab.chaos.observe import Sampler, socket_dsn
from haagent_lab.lab.cluster import LabCluster, LabNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL, LOOP_WAIT = 10, 2  # lab_factory's timings
ARMED, DISARMED = "): armed: ", "): disarmed: "  # the guard's lines, after its pid


def make_lab(lab_factory: Callable[..., LabCluster], **watchdog: Any) -> LabCluster:
    lab = lab_factory(watchdog=watchdog)  # merged over mode off
    lab.start(timeout=180)
    return lab


def agent_log(node: LabNode) -> str:
    assert node.agent is not None
    try:
        return node.agent.log_path.read_text(errors="replace")
    except OSError:
        return ""


def guard_lines(node: LabNode) -> list[str]:
    return [line for line in agent_log(node).splitlines() if "agent-death guard" in line]


def wait_guard_says(lab: LabCluster, node: LabNode, text: str, after: int, timeout: float) -> None:
    lab.wait_for(
        lambda: any(text in line for line in guard_lines(node)[after:]),
        f"{node.name}'s guard to log {text!r}",
        timeout,
    )


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def fds_of(pid: int) -> set[str]:
    links = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.add(os.readlink(entry))
        except OSError:
            continue
    return links


def check_guards(lab: LabCluster) -> dict[str, int]:
    """One guard per node: the agent's child, in its own session, with only its pipe and
    the agent's log open, and its pipe held by no PostgreSQL process."""
    guards: dict[str, int] = {}
    for node in lab.nodes.values():
        assert node.agent is not None
        pids = guard_pids(node.data_dir)
        assert len(pids) == 1, (node.name, pids)
        [pid] = pids
        assert parent_of(pid) == node.agent.pid
        assert os.getsid(pid) == pid
        stdin = os.readlink(f"/proc/{pid}/fd/0")
        assert stdin.startswith("pipe:"), stdin
        assert sorted(int(e.name) for e in Path(f"/proc/{pid}/fd").iterdir()) == [0, 1, 2]
        postmaster = node.postmaster_pid()
        assert postmaster is not None
        assert stdin not in fds_of(postmaster), "PostgreSQL inherited the guard's pipe"
        guards[node.name] = pid
    return guards


def writable(node: LabNode) -> bool:
    with psycopg.connect(socket_dsn(node), autocommit=True) as conn:
        row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
        return row is not None and row[0] is True


def haactl(node: LabNode, *args: str) -> str:
    argv = [sys.executable, "-m", "haagent.cli.main", "-c", str(node.config_path), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def reason_code(node: LabNode) -> str | None:
    code, body = node.api("/")
    if code not in (200, 503) or not isinstance(body, dict):
        return None
    return str(body["haagent"]["reason_code"])


def test_a_killed_leader_agent_stops_its_primary_before_a_replica_is_promoted(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = make_lab(lab_factory)
    old = lab.leader()
    assert old is not None
    node = lab.nodes[old]
    guards = check_guards(lab)
    wait_guard_says(lab, node, ARMED, 0, 30)
    assert not any(ARMED in line for n in lab.nodes.values() if n is not node
                   for line in guard_lines(n)), "a replica's guard was armed"  # fmt: skip
    postmaster = node.postmaster_pid()
    assert postmaster is not None and process_alive(postmaster)

    with Sampler(list(lab.nodes.values())) as sampler:
        lab.wait_for(lambda: sampler.seen({old}), f"the sampler to see {old} as primary", 30)
        killed_at = time.monotonic()
        lab.kill_agent(old)
        lab.wait_for(lambda: not process_alive(postmaster), "the old postmaster to exit", 10)
        stopped_after = time.monotonic() - killed_at
        lab.wait_for(lambda: not process_alive(guards[old]), "the old guard to exit", 10)
        lab.wait_for(lambda: lab.leader() not in (None, old), "a new leader", 60)
        new = lab.leader()
        assert new is not None
        lab.wait_for(
            lambda: sampler.first_writable(new, killed_at) is not None, f"{new} writable", 30
        )
        time.sleep(1.0)  # a few more samples with the new primary

    promoted_at = sampler.first_writable(new, killed_at)
    last_old = sampler.last_writable(old)
    assert promoted_at is not None and last_old is not None
    print(
        f"agent SIGKILLed: PostgreSQL stopped {stopped_after:.2f}s later, last written "
        f"{last_old - killed_at:.2f}s after the kill, {new} writable "
        f"{promoted_at - killed_at:.2f}s after it (ttl {TTL}s)"
    )
    assert sampler.overlaps() == [], (
        f"two nodes accepted writes at once:\n{sampler.changes(killed_at)}\n{lab.tails(60)}"
    )
    assert last_old < promoted_at
    # Stopped by the guard, not at the key's expiry; then the guard revoked the agent's
    # lease, so the replica took over at once instead of waiting for the ttl.
    assert stopped_after < TTL - LOOP_WAIT
    assert promoted_at - killed_at < 1.0
    assert node.postmaster_pid() is None  # a clean (fast) shutdown removed postmaster.pid
    lines = guard_lines(node)
    # Its end seen as the pipe's end of file or as re-parenting, whichever came first.
    assert any("; the agent died while it held the leader key" in li for li in lines), lines
    assert any("PostgreSQL stopped (fast shutdown)" in line for line in lines), lines
    assert any("revoked lease" in line for line in lines), lines
    assert guard_pids(node.data_dir) == []
    # The other guards did nothing.
    assert all(process_alive(guards[n]) for n in lab.nodes if n != old)

    lab.start_agent(old)  # as systemd's Restart= would
    lab.wait_healthy(120)
    assert lab.leader() == new
    assert old in lab.streaming_replicas()
    check_guards(lab)


def test_a_killed_agent_leaves_postgres_running_while_paused(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = make_lab(lab_factory)
    old = lab.leader()
    assert old is not None
    node = lab.nodes[old]
    guards = check_guards(lab)
    wait_guard_says(lab, node, ARMED, 0, 30)
    seen = len(guard_lines(node))
    haactl(node, "pause", "--wait")
    lab.wait_for(lambda: reason_code(node) == "paused", f"{old} to pause", 30)
    wait_guard_says(lab, node, DISARMED, seen, 30)
    postmaster = node.postmaster_pid()
    assert postmaster is not None and writable(node)

    lab.kill_agent(old)
    lab.wait_for(lambda: not process_alive(guards[old]), "the guard to exit", 10)
    time.sleep(3.0)  # the guard would have stopped PostgreSQL by now
    assert process_alive(postmaster), "PostgreSQL was stopped in maintenance mode"
    assert writable(node)
    # The agent's end is seen as its pipe's end of file or as the guard's re-parenting,
    # whichever the guard notices first; either way it was not armed.
    assert any("; not armed" in line for line in guard_lines(node)), guard_lines(node)
    assert not any("stopping PostgreSQL" in line for line in guard_lines(node))

    seen = len(guard_lines(node))
    lab.start_agent(old)
    lab.wait_for(lambda: lab.leader() == old, f"{old} to lead again", 60)
    time.sleep(LOOP_WAIT + 1.0)  # another cycle or two, still paused
    assert not any(ARMED in line for line in guard_lines(node)[seen:]), "armed while paused"
    haactl(node, "resume", "--wait")
    wait_guard_says(lab, node, ARMED, seen, 30)  # the new agent's guard, once resumed
    lab.wait_healthy(120)
    assert lab.leader() == old
    assert node.postmaster_pid() == postmaster, "PostgreSQL was restarted"
    check_guards(lab)


def test_without_the_guard_postgres_outlives_its_agent(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = make_lab(lab_factory, agent_death_guard=False)
    old = lab.leader()
    assert old is not None
    node = lab.nodes[old]
    for n in lab.nodes.values():
        assert guard_pids(n.data_dir) == []
        assert any("agent-death guard disabled" in line for line in guard_lines(n))
    postmaster = node.postmaster_pid()
    assert postmaster is not None

    lab.kill_agent(old)
    time.sleep(1.0)
    assert process_alive(postmaster) and writable(node)
    lab.start_agent(old)  # within the ttl: it still holds the key and adopts PostgreSQL
    lab.wait_healthy(120)
    assert lab.leader() == old
    assert node.postmaster_pid() == postmaster, "PostgreSQL was restarted"
