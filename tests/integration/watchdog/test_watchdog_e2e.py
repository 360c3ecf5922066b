"""End to end with the watchdog simulator: three agents with `watchdog: {mode: required}`.

Each node has its own simulator (`haagent_lab.watchdog.simulator --kill-peer --pgdata`),
and the agents run with ttl 10 and safety_margin 5, so the device timeout is 5 s.
A sampler asks every PostgreSQL `SELECT NOT pg_is_in_recovery()` every 100 ms and a
watcher reads the leader from the surviving members' `GET /cluster`.

- The primary's agent frozen (SIGSTOP) or killed (SIGKILL): its keepalives stop, the
  simulator "resets the node" (kills the agent and the postmaster) before the leader
  key expires, only then is a replica promoted, and no sample sees two writable nodes.
- A replica whose `mode: required` watchdog has no usable device never takes the free
  leader key, and says why in `GET /` and `haactl explain`; a healthy replica does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from haagent_lab.chaos.observe import Sampler
from haagent_lab.lab.cluster import LabCluster, LabNode
from haagent_lab.lab.watchdog_simulator import read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 10
DEVICE_TIMEOUT = 5  # ttl - safety_margin
SAMPLE_EVERY = 0.1
REQUIRED_UNAVAILABLE = "watchdog_required_unavailable"


@dataclass
class LeaderWatcher:
    """Every 100 ms: the leader in the DCS as the observers' `GET /cluster` shows it."""

    observers: Sequence[LabNode]
    samples: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _leader(self) -> tuple[bool, str | None]:
        for node in self.observers:
            code, body = node.api("/cluster", timeout=0.5)
            if code == 200 and isinstance(body, dict):
                leaders = [
                    m.get("name") for m in body.get("members", []) if m.get("role") == "leader"
                ]
                return True, leaders[0] if leaders else None
        return False, None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            answered, leader = self._leader()
            if answered:
                self.samples.append((started, leader))
            self._stop.wait(max(0.0, SAMPLE_EVERY - (time.monotonic() - started)))

    def first(self, predicate: Callable[[str | None], bool], after: float) -> float | None:
        return next((t for t, name in self.samples if t >= after and predicate(name)), None)


@pytest.fixture
def lab(lab_factory: Callable[..., LabCluster]) -> LabCluster:
    # The watchdog alone: without the agent-death guard, which would stop a killed
    # agent's PostgreSQL before the reset (test_agent_death_guard.py covers it).
    cluster = lab_factory(watchdog_simulator=True, watchdog={"agent_death_guard": False})
    cluster.start(timeout=120)
    return cluster


@dataclass
class Observed:
    """One failover of the primary, as the sampler, the watcher and the simulator saw it."""

    old: str
    new: str
    fault_at: float
    reset: dict[str, Any]
    key_held_after_reset: float  # the last watcher sample still showing `old` as leader
    key_free_at: float  # the first sample showing another leader or none
    new_leader_at: float
    new_writable_at: float

    def report(self, what: str) -> str:
        reset_at = float(self.reset["monotonic"])
        last_keepalive = reset_at - float(self.reset["silent"])
        return (
            f"{what}: reset {reset_at - last_keepalive:.2f}s after the last keepalive "
            f"({reset_at - self.fault_at:.2f}s after the fault), leader key seen free "
            f"{self.key_free_at - reset_at:.2f}s after the reset "
            f"({self.key_free_at - last_keepalive:.2f}s after the last keepalive, ttl {TTL}s), "
            f"{self.new} leader {self.new_leader_at - self.fault_at:.2f}s and writable "
            f"{self.new_writable_at - self.fault_at:.2f}s after the fault"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fail_primary(
    lab: LabCluster, fault: Callable[[LabNode], None], *, reset_kills_agent: bool
) -> Observed:
    """Apply `fault` to the primary's agent; wait for the new primary; check the order."""
    old = lab.leader()
    assert old is not None
    node = lab.nodes[old]
    assert node.agent is not None
    agent_pid = node.agent.pid
    postmaster = node.postmaster_pid()
    assert postmaster is not None
    code, body = node.api("/")
    assert code == 200 and body["haagent"]["watchdog"] == f"armed {DEVICE_TIMEOUT}s", body
    others = [n for n in lab.nodes.values() if n.name != old]
    sampler, watcher = Sampler(list(lab.nodes.values())), LeaderWatcher(others)
    sampler.start()
    watcher.start()
    try:
        lab.wait_for(
            lambda: (
                sampler.seen({old}) and sum(1 for _, name in watcher.samples if name == old) >= 3
            ),
            "the sampler and the watcher to see the primary",
            10,
        )
        fault_at = time.monotonic()
        fault(node)

        def new_leader() -> str | None:
            t = watcher.first(lambda n: n not in (None, old), fault_at)
            return None if t is None else next(n for s, n in watcher.samples if s == t)

        lab.wait_for(lambda: new_leader() is not None, "a new leader", 40)
        new = new_leader()
        assert new is not None
        lab.wait_for(
            lambda: sampler.first_writable(new, fault_at) is not None, f"{new} writable", 30
        )
        time.sleep(1.0)  # a few more samples with the new primary
    finally:
        sampler.stop()
        watcher.stop()

    lab.wait_for(lambda: bool(read_events(node.watchdog_events, "reset")), "the reset event", 5)
    resets = read_events(node.watchdog_events, "reset")
    assert len(resets) == 1, resets
    [reset] = resets
    reset_at = float(reset["monotonic"])
    assert fault_at < reset_at
    assert float(reset["silent"]) <= DEVICE_TIMEOUT + 0.5, reset
    assert postmaster in reset["killed"], (reset, postmaster)
    if reset_kills_agent:  # a killed agent is gone before the reset
        assert agent_pid in reset["killed"], (reset, agent_pid)
    assert not pid_alive(postmaster), "the old postmaster survived the reset"
    assert node.agent is not None and not node.agent.alive(), "the old agent survived the reset"

    held = [t for t, name in watcher.samples if name == old]
    key_free_at = watcher.first(lambda n: n != old, fault_at)
    new_leader_at = watcher.first(lambda n: n == new, fault_at)
    new_writable_at = sampler.first_writable(new, fault_at)
    assert key_free_at is not None and new_leader_at is not None and new_writable_at is not None
    observed = Observed(
        old, new, fault_at, reset, held[-1], key_free_at, new_leader_at, new_writable_at
    )
    # The node was reset while it still held the leader key, and only then did another
    # member take the key and promote.
    assert observed.key_held_after_reset > reset_at, observed
    assert reset_at < key_free_at <= new_leader_at, observed
    assert reset_at < new_writable_at, observed
    assert [t for t in sampler.writable_times(old) if t > reset_at] == []
    assert sampler.overlaps() == [], "two nodes accepted writes at once"
    return observed


def rejoin(lab: LabCluster, observed: Observed) -> None:
    """The reset node's agent started again (as systemd would): back as a replica."""
    lab.start_agent(observed.old)
    lab.wait_healthy(90)
    assert lab.leader() == observed.new
    assert observed.old in lab.streaming_replicas()


def freeze(node: LabNode) -> None:
    assert node.agent is not None
    node.agent.send_signal(signal.SIGSTOP)  # a stuck loop, a debugger, CPU starvation...


def kill(node: LabNode) -> None:
    assert node.agent is not None
    node.agent.kill()


def test_a_frozen_primary_agent_is_reset_before_its_key_expires(lab: LabCluster) -> None:
    observed = fail_primary(lab, freeze, reset_kills_agent=True)
    print(observed.report("frozen agent"))
    agent = lab.nodes[observed.old].agent
    if agent is not None:
        agent.send_signal(signal.SIGCONT)  # nothing left to resume: the reset killed it
        agent.stop(timeout=5)
    rejoin(lab, observed)


def test_a_killed_primary_agent_is_reset_before_its_key_expires(lab: LabCluster) -> None:
    observed = fail_primary(lab, kill, reset_kills_agent=False)
    print(observed.report("killed agent"))
    events = [e["event"] for e in read_events(lab.nodes[observed.old].watchdog_events)]
    assert events[-2:] == ["unexpected_close", "reset"], events
    rejoin(lab, observed)


def reason_code(node: LabNode) -> str | None:
    code, body = node.api("/")  # 503 on a replica, with the same JSON
    if code not in (200, 503) or not isinstance(body, dict):
        return None
    return str(body["haagent"]["reason_code"])


def haactl(node: LabNode, *args: str) -> str:
    argv = [sys.executable, "-m", "haagent.cli.main", "-c", str(node.config_path), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_required_watchdog_without_a_device_never_leads_and_says_why(lab: LabCluster) -> None:
    leader = lab.leader()
    assert leader is not None
    broken, healthy = (lab.nodes[n] for n in sorted(n for n in lab.nodes if n != leader))

    # The broken node: its agent restarted with a watchdog device that does not exist.
    lab.stop_agent(broken.name)
    config = yaml.safe_load(broken.config_path.read_text())
    config["watchdog"]["device"] = str(broken.base / "no-such-watchdog.sock")
    broken.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    lab.start_agent(broken.name)
    lab.wait_for(lambda: reason_code(broken) is not None, f"{broken.name}'s REST API", 30)
    lab.wait_healthy(60)
    code, body = broken.api("/")
    assert code == 503, body
    assert body["haagent"]["watchdog"].startswith("unavailable: "), body
    assert "no-such-watchdog.sock" in body["haagent"]["watchdog"], body

    sampler = Sampler(list(lab.nodes.values()))
    watcher = LeaderWatcher([broken, healthy])
    sampler.start()
    watcher.start()
    try:
        # The healthy replica's agent frozen (its PostgreSQL keeps streaming), the
        # leader stopped cleanly: the broken node is the only member left to race.
        assert healthy.agent is not None
        healthy.agent.send_signal(signal.SIGSTOP)
        try:
            lab.stop_agent(leader)
            lab.wait_for(
                lambda: reason_code(broken) == REQUIRED_UNAVAILABLE,
                "the broken node to refuse the free leader key",
                30,
            )
            time.sleep(2 * 2 + 1)  # two more loop_waits: it keeps refusing
            code, body = broken.api("/")
            assert code == 503 and body["haagent"]["reason_code"] == REQUIRED_UNAVAILABLE, body
            assert body["role"] == "replica", body
            assert "watchdog" in body["haagent"]["reason_text"], body
            assert broken.api("/primary")[0] == 503

            document = json.loads(haactl(broken, "explain", "-f", "json"))
            assert document["leader"] is None, document
            [member] = [m for m in document["members"] if m["name"] == broken.name]
            assert member["can_lead"] is False, member
            assert member["reason_code"] == REQUIRED_UNAVAILABLE, member
            assert member["watchdog"].startswith("unavailable: "), member
            text = haactl(broken, "explain")
            print(text)
            assert (
                f"watchdog.mode is required but the watchdog is unavailable on {broken.name}"
                in text
            )
        finally:
            healthy.agent.send_signal(signal.SIGCONT)

        # The healthy replica, awake again, takes the key and promotes.
        lab.wait_for(lambda: lab.leader() == healthy.name, f"{healthy.name} to lead", 40)
        time.sleep(1.0)
    finally:
        sampler.stop()
        watcher.stop()
    assert [t for t, name in watcher.samples if name == broken.name] == []
    assert sampler.writable_times(broken.name) == []
    assert sampler.overlaps() == []
    assert read_events(broken.watchdog_events, "open") == []  # it never even tried to arm
