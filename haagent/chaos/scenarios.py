"""The failure scenarios of the seed lab (network, power, processes, CPU, etcd), automated.

Numbers follow issue #10; each scenario starts a fresh three-node lab.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from haagent.chaos.scenario import DEFAULT_TIMINGS, Context, Expect, Scenario
from haagent.lab import processes

NETWORK_OUTAGE = 30.0  # seconds a node stays cut off (three ttl of the fast timings)
CPU_SATURATION = 60.0
ETCD_OUTAGE = 60.0


def replica_network_loss(ctx: Context) -> None:
    replica = ctx.replicas()[0]
    ctx.note(f"cut {replica} (a replica) off for {NETWORK_OUTAGE:.0f}s")
    ctx.mark("fault")
    ctx.isolate(replica)
    time.sleep(NETWORK_OUTAGE)
    ctx.heal_network()
    ctx.mark("heal")


def primary_network_loss(ctx: Context) -> None:
    ctx.note(f"cut {ctx.leader} (the primary) off for {NETWORK_OUTAGE:.0f}s")
    ctx.mark("fault")
    ctx.isolate(ctx.leader)
    time.sleep(NETWORK_OUTAGE)
    ctx.heal_network()
    ctx.mark("heal")


def primary_and_replica_network_loss(ctx: Context) -> None:
    replica = ctx.replicas()[0]
    ctx.note(f"cut {ctx.leader} (the primary) and {replica} off for {NETWORK_OUTAGE:.0f}s")
    ctx.mark("fault")
    ctx.isolate(ctx.leader, replica)
    time.sleep(NETWORK_OUTAGE)
    ctx.heal_network()
    ctx.mark("heal")


def primary_power_loss(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    index = lab.index_of(old) - 1
    ctx.note(f"SIGKILL {old}'s agent, postmaster and etcd member; restart them after failover")
    ctx.mark("fault")
    lab.kill_agent(old)
    lab.kill_postmaster(old)
    lab.etcd.stop_member(index, kill=True)
    ctx.wait_for_new_leader()
    time.sleep(5)
    lab.etcd.start_member(index)
    lab.start_agent(old)
    ctx.mark("heal")


def postmaster_kill(ctx: Context) -> None:
    ctx.note(f"SIGKILL {ctx.leader}'s postmaster")
    ctx.mark("fault")
    ctx.lab.kill_postmaster(ctx.leader)
    ctx.mark("heal")


def agent_kill(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    ctx.note(f"SIGKILL {old}'s agent; restart it after failover")
    ctx.mark("fault")
    lab.kill_agent(old)
    ctx.wait_for_new_leader()
    writable = lab.nodes[old].postmaster_pid() is not None
    ctx.note(f"{old}'s PostgreSQL {'still running' if writable else 'stopped'} after failover")
    time.sleep(3)
    lab.start_agent(old)
    ctx.mark("heal")


def agent_freeze(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    agent = lab.nodes[old].agent
    assert agent is not None
    ctx.note(f"SIGSTOP {old}'s agent (hung); restart it after failover")
    ctx.mark("fault")
    agent.send_signal(signal.SIGSTOP)
    ctx.wait_for_new_leader()
    if agent.alive():  # the watchdog kills it; without one it is still stopped
        agent.send_signal(signal.SIGCONT)
        lab.stop_agent(old)
    time.sleep(3)
    lab.start_agent(old)
    ctx.mark("heal")


def cpu_saturation(ctx: Context) -> None:
    workers = 2 * (os.cpu_count() or 2)
    base = ctx.lab.base
    ctx.note(f"{workers} busy loops on {os.cpu_count()} cores for {CPU_SATURATION:.0f}s")
    ctx.mark("fault")
    burners = [
        processes.start(
            f"cpu burner {i}",
            [sys.executable, "-c", "while True: pass"],
            base / f"burner{i}.log",
            user=ctx.lab.user,
        )
        for i in range(workers)
    ]
    try:
        time.sleep(CPU_SATURATION)
    finally:
        for burner in burners:
            burner.kill()
    ctx.mark("heal")


def switchover(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    candidate = ctx.replicas()[0]
    ctx.note(f"switchover {old} -> {candidate} through POST /switchover")
    body = json.dumps({"leader": old, "candidate": candidate}).encode()
    request = urllib.request.Request(
        lab.nodes[old].api_url + "/switchover", data=body, method="POST"
    )
    ctx.mark("fault")
    with urllib.request.urlopen(request, timeout=60) as response:
        ctx.note(f"answer {response.status}: {response.read().decode(errors='replace')[:120]}")
    ctx.mark("heal")


def etcd_outage(ctx: Context) -> None:
    members = range(len(ctx.lab.etcd.members))
    ctx.note(f"stop every etcd member for {ETCD_OUTAGE:.0f}s")
    ctx.mark("fault")
    for i in members:
        ctx.lab.etcd.stop_member(i)
    time.sleep(ETCD_OUTAGE)
    for i in members:
        ctx.lab.etcd.start_member(i)
    ctx.mark("heal")


SYNC: Mapping[str, Any] = {"synchronous_mode": True}
QUORUM_LOST = Expect(no_primary_during_fault=True, health_within=120.0)


def _all() -> list[Scenario]:
    network_primary = Expect(leader_change=True, rewind=True, demote_within_ttl=True)
    return [
        Scenario("replica-network-loss", "1 a replica loses its network, then gets it back",
                 replica_network_loss, network=True, expect=Expect(leader_change=False)),
        Scenario("primary-network-loss", "2 the primary loses its network, then gets it back",
                 primary_network_loss, network=True, expect=network_primary, fast=True),
        Scenario("primary-and-replica-network-loss",
                 "3 the primary and a replica lose their network together (no etcd quorum)",
                 primary_and_replica_network_loss, network=True, expect=QUORUM_LOST),
        Scenario("primary-power-loss", "4 power loss of the primary (agent, PostgreSQL, etcd)",
                 primary_power_loss, expect=Expect(leader_change=True)),
        Scenario("postmaster-kill", "5 the primary's postmaster SIGKILLed",
                 postmaster_kill, expect=Expect(leader_change=False), fast=True),
        Scenario("agent-kill", "6 the primary's agent SIGKILLed, no watchdog",
                 agent_kill, expect=Expect(leader_change=True)),
        Scenario("agent-kill-watchdog", "6 the primary's agent SIGKILLed, watchdog simulator",
                 agent_kill, watchdog_simulator=True, expect=Expect(leader_change=True)),
        Scenario("agent-freeze-watchdog", "6 the primary's agent hung (SIGSTOP), watchdog",
                 agent_freeze, watchdog_simulator=True, expect=Expect(leader_change=True)),
        Scenario("cpu-saturation", "7 CPU saturation, both cores, 60s, default timings",
                 cpu_saturation, dynamic=DEFAULT_TIMINGS, expect=Expect(leader_change=False)),
        Scenario("switchover", "8 manual switchover under write load",
                 switchover, expect=Expect(leader_change=True), fast=True),
        Scenario("etcd-outage", "9 every etcd member stopped for 60s, failsafe_mode off",
                 etcd_outage, expect=QUORUM_LOST),
        Scenario("etcd-outage-failsafe", "9 every etcd member stopped for 60s, failsafe_mode on",
                 etcd_outage, dynamic={"failsafe_mode": True},
                 expect=Expect(leader_change=False, primary_throughout=True), fast=True),
        Scenario("primary-network-loss-sync", "10 = 2 with synchronous_mode on",
                 primary_network_loss, dynamic=SYNC, network=True, expect=network_primary),
        Scenario("primary-power-loss-sync", "10 = 4 with synchronous_mode on",
                 primary_power_loss, dynamic=SYNC, expect=Expect(leader_change=True)),
        Scenario("postmaster-kill-sync", "10 = 5 with synchronous_mode on",
                 postmaster_kill, dynamic=SYNC, expect=Expect(leader_change=False)),
    ]  # fmt: skip


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _all()}
FAST = [s.name for s in SCENARIOS.values() if s.fast]
