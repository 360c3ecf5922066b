"""The watchdog simulator as a real process, with the testing driver as its client.

Each test starts a simulator for one pretend node whose "agent" and "postmaster"
are harmless stand-ins (sleep processes; the postmaster is found through the
postmaster.pid of a fake data directory and has children of its own), and checks
what the kernel would do: keepalives keep the node alive, silence resets it
within timeout + 0.5 s, a magic close stops the timer, and a close without it
does not.  Every process a test starts is stopped by its pid.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from haagent.config.model import WatchdogSettings
from haagent.watchdog.driver import WatchdogError
from haagent.watchdog.manager import Watchdog
from haagent_lab.lab import processes
from haagent_lab.lab.processes import Process
from haagent_lab.lab.watchdog_simulator import read_events, start_simulator
from haagent_lab.watchdog import proctree
from haagent_lab.watchdog.testing_driver import TestingWatchdogDriver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 2
SLACK = 0.5

AGENT_SCRIPT = """
import sys, time
from haagent_lab.watchdog.testing_driver import TestingWatchdogDriver
driver = TestingWatchdogDriver(sys.argv[1])
driver.open()
driver.set_timeout(int(sys.argv[2]))
print("armed", flush=True)
while True:
    driver.keepalive()
    time.sleep(0.2)
"""


@dataclass
class Node:
    workdir: Path
    socket: Path
    events: Path
    agent: Process
    postmaster: Process
    simulator: Process
    started: list[Process]

    def postmaster_children(self) -> list[int]:
        return [
            p for p in proctree.with_descendants([self.postmaster.pid]) if p != self.postmaster.pid
        ]

    def resets(self) -> list[dict[str, Any]]:
        return read_events(self.events, "reset")

    def wait_events(self, count: int, kind: str | None = None) -> list[dict[str, Any]]:
        """The events once there are `count` (of `kind`): the simulator writes them just
        after it acted, so a test that saw the effect may be a moment early."""
        processes.wait_for(
            lambda: len(read_events(self.events, kind)) >= count, f"{count} events", 5
        )
        return read_events(self.events, kind)

    def start(self, name: str, argv: list[str]) -> Process:
        process = processes.start(name, argv, self.workdir / f"{name}.log")
        self.started.append(process)
        return process


def alive(pid: int) -> bool:
    return proctree.read_stat(pid) is not None


def wait_dead(pids: list[int], timeout: float) -> float:
    """Wait until none of `pids` is alive; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"still alive after {timeout}s: {[p for p in pids if alive(p)]}")


def make_node(workdir: Path, *, kill_peer: bool = False, **options: Any) -> Node:
    started: list[Process] = []
    try:
        agent = processes.start("agent", ["sleep", "1000"], workdir / "agent.log")
        started.append(agent)
        (workdir / "agent.pid").write_text(f"{agent.pid}\n")
        pgdata = workdir / "pgdata"
        pgdata.mkdir()
        postmaster = processes.start(
            "postmaster", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"], workdir / "pm.log"
        )
        started.append(postmaster)
        (pgdata / "postmaster.pid").write_text(f"{postmaster.pid}\n{pgdata}\n1700000000\n5432\n")
        socket_path, events = workdir / "watchdog.sock", workdir / "events.jsonl"
        simulator = start_simulator(
            socket_path,
            workdir / "simulator.log",
            node="node1",
            kill_peer=kill_peer,
            kill_pidfiles=[workdir / "agent.pid"],
            pgdata=[pgdata],
            events=events,
            **options,
        )
        started.append(simulator)
        node = Node(workdir, socket_path, events, agent, postmaster, simulator, started)
        processes.wait_for(lambda: len(node.postmaster_children()) == 2, "postmaster children", 5)
        return node
    except BaseException:
        for process in reversed(started):
            process.stop(timeout=2)
        raise


@contextmanager
def running_node(workdir: Path, **options: Any) -> Iterator[Node]:
    node = make_node(workdir, **options)
    try:
        yield node
    finally:
        children = node.postmaster_children()
        for process in reversed(node.started):
            process.stop(timeout=2)
        proctree.kill_all(children)
        print(node.simulator.log_tail(40))


@pytest.fixture
def node(workdir: Path) -> Iterator[Node]:
    with running_node(workdir) as node:
        yield node


def node_pids(node: Node) -> list[int]:
    return [node.agent.pid, node.postmaster.pid, *node.postmaster_children()]


def test_keepalives_keep_the_node_alive_then_silence_resets_it(node: Node) -> None:
    pids = node_pids(node)
    assert len(pids) == 4
    driver = TestingWatchdogDriver(str(node.socket))
    driver.open()
    driver.set_timeout(TIMEOUT)
    assert driver.get_timeout() == TIMEOUT
    end = time.monotonic() + 2 * TIMEOUT
    while time.monotonic() < end:
        driver.keepalive()
        time.sleep(0.3)
    assert all(alive(p) for p in pids)
    assert node.resets() == []

    driver.keepalive()
    last = time.monotonic()
    seen_dead = wait_dead(pids, TIMEOUT + SLACK + 1)
    assert seen_dead - last <= TIMEOUT + SLACK
    [reset] = node.wait_events(1, "reset")
    assert TIMEOUT - 0.05 <= float(reset["monotonic"]) - last <= TIMEOUT + SLACK
    assert sorted(reset["killed"]) == sorted(pids)
    assert node.simulator.alive()
    with pytest.raises(WatchdogError):  # the "machine" reset: the connection is gone
        driver.keepalive()
    driver.close()


def test_magic_close_stops_the_timer(node: Node) -> None:
    driver = TestingWatchdogDriver(str(node.socket))
    driver.open()
    driver.set_timeout(TIMEOUT)
    driver.keepalive()
    driver.close(magic=True)
    time.sleep(TIMEOUT + 1)
    assert all(alive(p) for p in node_pids(node))
    assert node.resets() == []
    assert [e["event"] for e in node.wait_events(2)] == ["open", "magic_close"]


def test_close_without_magic_keeps_the_timer_running(node: Node) -> None:
    pids = node_pids(node)
    driver = TestingWatchdogDriver(str(node.socket))
    driver.open()
    driver.set_timeout(TIMEOUT)
    driver.close(magic=False)
    closed = time.monotonic()
    wait_dead(pids, TIMEOUT + SLACK + 1)
    assert time.monotonic() - closed <= TIMEOUT + SLACK + 0.1
    assert len(node.wait_events(1, "reset")) == 1


def test_dropped_connection_without_magic_resets_the_node(node: Node) -> None:
    pids = node_pids(node)
    driver = TestingWatchdogDriver(str(node.socket))
    driver.open()
    driver.set_timeout(TIMEOUT)
    driver._drop()  # the socket just goes away, as when the agent process dies
    wait_dead(pids, TIMEOUT + SLACK + 1)
    events = [e["event"] for e in node.wait_events(3)]
    assert events == ["open", "unexpected_close", "reset"]


def test_a_second_client_is_refused_while_one_holds_the_watchdog(node: Node) -> None:
    first = TestingWatchdogDriver(str(node.socket))
    first.open()
    with pytest.raises(WatchdogError, match="already open"):
        TestingWatchdogDriver(str(node.socket)).open()
    first.close(magic=True)


def test_a_frozen_agent_holding_the_watchdog_is_killed_with_postgres(workdir: Path) -> None:
    with running_node(workdir, kill_peer=True) as node:
        argv = [sys.executable, "-c", AGENT_SCRIPT, str(node.socket), str(TIMEOUT)]
        holder = node.start("holder", argv)
        armed = holder.log_tail
        processes.wait_for(lambda: "armed" in armed(), "the agent to arm", 10, holder)
        time.sleep(TIMEOUT + 1)
        assert holder.alive() and node.resets() == []
        holder.send_signal(signal.SIGSTOP)  # CPU starvation, a debugger, a stuck loop...
        pids = [holder.pid, *node_pids(node)]
        wait_dead(pids, TIMEOUT + SLACK + 1)
        [reset] = node.wait_events(1, "reset")
        assert holder.pid in reset["killed"]


def test_the_manager_arms_keeps_alive_and_disarms_through_the_simulator(node: Node) -> None:
    settings = WatchdogSettings(mode="required", device=str(node.socket), driver="testing")
    watchdog = Watchdog(settings)
    watchdog.configure(ttl=TIMEOUT + 5, loop_wait=1)
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.arm()
    assert watchdog.describe() == f"armed {TIMEOUT}s"
    for _ in range(6):
        assert watchdog.keepalive_after_renewal(True)
        time.sleep(0.5)
    watchdog.disarm()
    time.sleep(TIMEOUT + 1)
    assert all(alive(p) for p in node_pids(node))

    assert watchdog.arm()
    pids = node_pids(node)
    start = time.monotonic()
    while time.monotonic() - start < TIMEOUT + SLACK + 1 and any(alive(p) for p in pids):
        assert not watchdog.keepalive_after_renewal(False)  # renewals fail: no keepalive
        time.sleep(0.2)
    wait_dead(pids, 0.5)


def test_a_device_that_cannot_go_that_low_refuses_leadership(workdir: Path) -> None:
    with running_node(workdir, min_timeout=5) as node:
        settings = WatchdogSettings(mode="required", device=str(node.socket), driver="testing")
        watchdog = Watchdog(settings)
        watchdog.configure(ttl=TIMEOUT + 5, loop_wait=1)
        assert not watchdog.arm()
        ok, reason = watchdog.can_be_leader()
        assert not ok
        assert reason is not None and "refused a timeout of 2s" in reason
        assert [e["event"] for e in node.wait_events(2)] == ["open", "magic_close"]
