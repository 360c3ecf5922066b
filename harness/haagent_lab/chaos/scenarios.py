"""The failure scenarios (network, power, processes, CPU, etcd), automated,
and the stalls a lease fence must survive (a frozen agent, a leader cut off from etcd,
a stopped checkpointer during a switchover or a shutdown, a paused cluster).

Numbers 1-10 are the faults, 11-15 the stalls, 16 a standby cluster's leader loss; each
scenario starts a fresh three-node lab and runs at both timing profiles (the lab's fast
one and Patroni's defaults).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg

from haagent.rest_client import ApiUnreachable
from haagent_lab.chaos.scenario import DEFAULT_TIMINGS, Context, Expect, Scenario
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LabCluster, LabNode

NETWORK_OUTAGE = 30.0  # seconds a node stays cut off (three ttl of the fast timings)
CHECKPOINT_STALL = 45.0  # seconds a checkpointer stays stopped (a checkpoint under load)
CPU_SATURATION = 60.0
ETCD_OUTAGE = 30.0  # seconds etcd stays down at least (2 ttl when that is longer)


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


def _standby_leader(standby: LabCluster) -> str | None:
    found = [n for n, node in standby.nodes.items() if node.api("/standby-leader")[0] == 200]
    return found[0] if len(found) == 1 else None


def _replayed(node: LabNode) -> int:
    """The position `node` (a standby) has replayed, as an integer; 0 when it cannot say."""
    try:
        with psycopg.connect(node.dsn, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def _primary_position(node: LabNode) -> int:
    with psycopg.connect(node.dsn, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def standby_cluster_leader_loss(ctx: Context) -> None:
    """A standby cluster of two (a second scope on the lab's etcd) follows the lab's
    primary under the writer; its standby leader's node is lost (agent and PostgreSQL
    SIGKILLed): the other member must take over as standby leader and replay everything
    the primary wrote, then the lost node comes back as its replica.  The lab itself is
    not faulted (its primary stays)."""
    lab, primary = ctx.lab, ctx.lab.nodes[ctx.leader]
    hosts = tuple(lab.hosts[:2])
    standby = LabCluster(
        lab.base / "standby-cluster",
        names=("dr1", "dr2"),
        hosts=hosts,
        scope=f"{lab.scope}-dr",
        pg_port=None,
        api_port=None,
        etcd_ports=None,
        user=lab.user,
        dynamic={**ctx.timings, "standby_cluster": {"host": primary.host,
                                                    "port": primary.pg_port}},
        shared_etcd=lab.etcd,
    )  # fmt: skip
    try:
        standby.start(wait=False)

        def following(leader: str | None) -> bool:
            if leader is None or _standby_leader(standby) != leader:
                return False
            other = next(n for n in standby.nodes if n != leader)
            code, body = standby.nodes[leader].api("/patroni")
            rows = (body.get("replication") or []) if code == 200 and isinstance(body, dict) else []
            # Streaming, not cloning: pg_basebackup's walsender shows the same name.
            return any(
                r.get("application_name") == other and r.get("state") == "streaming" for r in rows
            )

        standby.wait_for(lambda: following(_standby_leader(standby)), "the standby cluster",
                         120)  # fmt: skip
        old = _standby_leader(standby)
        assert old is not None
        ctx.note(f"standby cluster up, standby leader {old}; SIGKILL its agent and PostgreSQL")
        ctx.mark("fault")
        started = time.monotonic()
        standby.kill_agent(old)
        standby.kill_postmaster(old)
        standby.wait_for(lambda: _standby_leader(standby) not in (None, old),
                         "a new standby leader", 60)  # fmt: skip
        new = _standby_leader(standby)
        assert new is not None
        took = time.monotonic() - started
        target = _primary_position(primary)
        standby.wait_for(lambda: _replayed(standby.nodes[new]) >= target,
                         f"{new} to replay the primary's WAL", 60)  # fmt: skip
        ctx.note(f"{new} took over as standby leader in {took:.1f}s and replays the primary")
        standby.start_agent(old)
        standby.wait_for(lambda: following(new), f"{old} back as {new}'s replica", 90)
        ctx.note(f"{old} back as a replica of {new}")
        ctx.mark("heal")
    finally:
        standby.stop()


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
    ctx.mark("fault")
    reply = lab.nodes[old].call("POST", "/switchover", {"leader": old, "candidate": candidate}, 60)
    ctx.note(f"answer {reply.status}: {reply.text[:120]}")
    if not reply.ok:
        raise RuntimeError(f"POST /switchover answered {reply.status}: {reply.message}")
    ctx.mark("heal")


def etcd_outage(ctx: Context) -> None:
    members = range(len(ctx.lab.etcd.members))
    seconds = max(ETCD_OUTAGE, 2.0 * ctx.ttl)
    ctx.note(f"stop every etcd member for {seconds:.0f}s")
    ctx.mark("fault")
    for i in members:
        ctx.lab.etcd.stop_member(i)
    time.sleep(seconds)
    for i in members:
        ctx.lab.etcd.start_member(i)
    ctx.mark("heal")


def agent_freeze_for(fraction: float) -> Callable[[Context], None]:
    """SIGSTOP the leader's agent for `fraction` of ttl, no watchdog: only the guard's lease
    fence keeps its PostgreSQL from outliving the lease."""

    def inject(ctx: Context) -> None:
        lab, old = ctx.lab, ctx.leader
        agent = lab.nodes[old].agent
        assert agent is not None
        seconds = fraction * ctx.ttl
        ctx.note(f"SIGSTOP {old}'s agent for {seconds:.0f}s (no watchdog), then SIGCONT")
        ctx.mark("fault")
        agent.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            agent.send_signal(signal.SIGCONT)
        ctx.mark("heal")

    return inject


def etcd_cut_leader(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    assert ctx.faults is not None
    seconds = max(NETWORK_OUTAGE, 2.0 * ctx.ttl)
    ports = [m.client.port for m in lab.etcd.members]
    ctx.note(f"cut {old}'s connections to etcd (ports {ports}) for {seconds:.0f}s")
    ctx.mark("fault")
    ctx.faults.cut_ports(lab.index_of(old), ports)
    time.sleep(seconds)
    ctx.heal_network()
    ctx.mark("heal")


def checkpointer_pid(ctx: Context, name: str) -> int:
    """The pid of the checkpointer of `name`'s PostgreSQL (a child of its postmaster)."""
    postmaster = ctx.lab.nodes[name].postmaster_pid()
    assert postmaster is not None, f"{name}'s PostgreSQL does not run"
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"checkpointer" in cmdline:
            return int(child)
    raise AssertionError(f"no checkpointer under {name}'s postmaster {postmaster}")


def resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def switchover_stopped_checkpointer(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    candidate = ctx.replicas()[0]
    stalled = CHECKPOINT_STALL
    pid = checkpointer_pid(ctx, old)
    ctx.note(f"SIGSTOP {old}'s checkpointer for {stalled:.0f}s, switchover to {candidate}")
    answers: list[str] = []

    def ask() -> None:
        body = {"leader": old, "candidate": candidate}
        try:
            reply = lab.nodes[old].call("POST", "/switchover", body, 3 * stalled)
            answers.append(f"{reply.status}: {reply.text[:100]}")
        except ApiUnreachable as e:
            answers.append(str(e))

    asking = threading.Thread(target=ask, daemon=True)
    ctx.mark("fault")
    os.kill(pid, signal.SIGSTOP)
    try:
        asking.start()
        time.sleep(stalled)
    finally:
        resume(pid)
    ctx.wait_for_new_leader()
    asking.join(3 * stalled)
    ctx.note(f"the switchover answered {answers[0] if answers else 'nothing'}")
    ctx.mark("heal")


def sigterm_stopped_checkpointer(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    stalled = CHECKPOINT_STALL
    pid = checkpointer_pid(ctx, old)
    agent = lab.nodes[old].agent
    assert agent is not None
    ctx.note(f"SIGSTOP {old}'s checkpointer for {stalled:.0f}s, SIGTERM its agent")
    ctx.mark("fault")
    os.kill(pid, signal.SIGSTOP)
    try:
        agent.send_signal(signal.SIGTERM)
        time.sleep(stalled)
    finally:
        resume(pid)
    ctx.wait_for_new_leader()
    lab.wait_for(lambda: not agent.alive(), f"{old}'s agent to exit", 120)
    lab.start_agent(old)
    ctx.mark("heal")


def paused_leader_stopped(ctx: Context) -> None:
    lab, old = ctx.lab, ctx.leader
    seconds = ctx.ttl + 15.0
    ctx.note(f"pause the cluster, stop {old}'s agent for {seconds:.0f}s, start it, resume")
    set_pause(ctx, True)
    ctx.mark("fault")
    lab.stop_agent(old)
    time.sleep(seconds)
    lab.start_agent(old)
    lab.wait_for(lambda: lab.leader() == old, f"{old} to take its key back", 60)
    set_pause(ctx, False)
    ctx.mark("heal")


def set_pause(ctx: Context, paused: bool) -> None:
    lab = ctx.lab
    leader = lab.nodes[ctx.leader]
    reply = leader.call("PATCH", "/config", {"pause": paused}, 10)
    assert reply.status == 200, reply.status

    def everyone() -> bool:
        return all(node.api("/patroni")[1].get("pause", False) == paused for node in
                   lab.nodes.values() if node.agent is not None and node.agent.alive())  # fmt: skip

    lab.wait_for(everyone, f"every member to report pause={paused}", 60)


SYNC: Mapping[str, Any] = {"synchronous_mode": True}
QUORUM: Mapping[str, Any] = {"synchronous_mode": "quorum", "synchronous_node_count": 1}
QUORUM_LOST = Expect(no_primary_during_fault=True, health_within=120.0)


def _all() -> list[Scenario]:
    network_primary = Expect(leader_change=True, rewind=True, demote_within_ttl=True)
    fenced = Expect(leader_change=True, rewind=True, demote_within_ttl=True, no_direct_loss=True)
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
        Scenario("etcd-outage", "9 all of etcd stopped 30s (2 ttl at least), failsafe_mode off",
                 etcd_outage, expect=QUORUM_LOST),
        Scenario("etcd-outage-failsafe", "9 all of etcd stopped 30s (2 ttl at least), failsafe on",
                 etcd_outage, dynamic={"failsafe_mode": True},
                 expect=Expect(leader_change=False, primary_throughout=True), fast=True),
        Scenario("primary-network-loss-sync", "10 = 2 with synchronous_mode on",
                 primary_network_loss, dynamic=SYNC, network=True, expect=network_primary),
        Scenario("primary-power-loss-sync", "10 = 4 with synchronous_mode on",
                 primary_power_loss, dynamic=SYNC, expect=Expect(leader_change=True)),
        Scenario("primary-power-loss-quorum", "10 = 4 with synchronous_mode: quorum (ANY 1)",
                 primary_power_loss, dynamic=QUORUM, expect=Expect(leader_change=True)),
        Scenario("standby-cluster-leader-loss",
                 "16 a standby cluster's standby leader lost (its agent and PostgreSQL)",
                 standby_cluster_leader_loss, expect=Expect(leader_change=False)),
        Scenario("postmaster-kill-sync", "10 = 5 with synchronous_mode on",
                 postmaster_kill, dynamic=SYNC, expect=Expect(leader_change=False)),
        Scenario("agent-freeze-short", "11 the primary's agent SIGSTOPped 0.77 ttl, no watchdog",
                 agent_freeze_for(0.77),
                 expect=Expect(demote_within_ttl=True, no_direct_loss=True)),
        Scenario("agent-freeze-long", "11 the primary's agent SIGSTOPped 1.33 ttl, no watchdog",
                 agent_freeze_for(1.33), expect=fenced, fast=True),
        Scenario("agent-freeze-long-sync", "11 = the long freeze with synchronous_mode on",
                 agent_freeze_for(1.33), dynamic=SYNC, expect=fenced),
        Scenario("etcd-cut-leader", "12 the primary cut off from etcd only",
                 etcd_cut_leader, network=True, expect=fenced),
        Scenario("switchover-stopped-checkpointer",
                 "13 switchover while the primary's checkpointer is stopped",
                 switchover_stopped_checkpointer,
                 expect=Expect(leader_change=True, no_direct_loss=True)),
        Scenario("sigterm-stopped-checkpointer",
                 "14 SIGTERM to the primary's agent while its checkpointer is stopped",
                 sigterm_stopped_checkpointer,
                 expect=Expect(leader_change=True, no_direct_loss=True)),
        Scenario("paused-leader-stopped",
                 "15 maintenance mode: the primary's agent stopped, then started again",
                 paused_leader_stopped,
                 expect=Expect(leader_change=False, primary_throughout=True, no_direct_loss=True)),
    ]  # fmt: skip


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _all()}
FAST = [s.name for s in SCENARIOS.values() if s.fast]
