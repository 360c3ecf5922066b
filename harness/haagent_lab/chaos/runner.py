"""Run one failure scenario on a fresh three-node lab and judge it.

The lab runs etcd members on the nodes' own addresses (127.0.0.11-13), HAProxy
on free ports of 127.0.0.1, a writer (a row every 20 ms through a libpq
multi-host string, target_session_attrs=read-write), a reader through HAProxy's
read port and a sampler asking every node, every 100 ms, whether it accepts
writes.  Then the scenario injects its fault, and the runner checks the
invariants: never two writable nodes in a sample; no acknowledged write lost
with synchronous_mode; one primary and every replica streaming within a bound
after the fault ends; no data directory wiped; plus what the scenario expects.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from haagent.config.model import Address
from haagent_lab.chaos.observe import Reader, Sample, Sampler, longest_gap
from haagent_lab.chaos.result import Result
from haagent_lab.chaos.scenario import Context, Scenario
from haagent_lab.lab import processes
from haagent_lab.lab.cluster import LAB_PASSWORD, LAB_STATS, LabCluster
from haagent_lab.lab.haproxy import routes_match
from haagent_lab.lab.netfault import NetFaultError, NetworkFaults
from haagent_lab.lab.processes import ProcessError
from haagent_lab.lab.workload import CLIENT_TIMEOUTS, Writer, multi_host_dsn

BASELINE = 3.0  # seconds of undisturbed load before the fault
AFTERWARDS = 3.0  # seconds of load after full health


def say(scenario: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {scenario}: {text}", file=sys.stderr, flush=True)


def data_dir_identity(lab: LabCluster) -> dict[str, int | None]:
    """The inode of each node's PG_VERSION: a wiped and re-cloned data directory gets a new
    one, a pg_rewind keeps it (it rewrites files in place)."""
    identity: dict[str, int | None] = {}
    for name, node in lab.nodes.items():
        try:
            identity[name] = (node.data_dir / "PG_VERSION").stat().st_ino
        except OSError:
            identity[name] = None
    return identity


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Observers:
    writer: Writer  # libpq multi-host, target_session_attrs=read-write: follows the primary
    direct: Writer  # connected straight to the leader of the start, and only to it
    reader: Reader
    sampler: Sampler

    def start(self) -> None:
        self.writer.start()
        self.direct.start()
        self.reader.start()
        self.sampler.start()

    def stop(self) -> None:
        self.writer.stop()
        self.direct.stop()
        self.reader.stop()
        self.sampler.stop()


# The test suite's labs use 127.0.0.11-13; the command uses other addresses, so that its
# network faults never touch a test run on the same machine.
TEST_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
COMMAND_HOSTS = ("127.0.0.31", "127.0.0.32", "127.0.0.33")


def make_lab(
    scenario: Scenario, base: Path, user: str | None, hosts: tuple[str, ...] = TEST_HOSTS
) -> LabCluster:
    ports = tuple(processes.free_port("127.0.0.1") for _ in range(3))
    return LabCluster(
        base,
        hosts=hosts,
        scope=f"chaos-{scenario.name}",
        pg_port=None,
        api_port=None,
        etcd_ports=None,
        user=user,
        dynamic={**scenario.dynamic, **scenario.timings},
        watchdog_simulator=scenario.watchdog_simulator,
        haproxy_ports=(ports[0], ports[1], ports[2]),
        node_groups=scenario.network,
    )


def make_observers(lab: LabCluster, leader: str) -> Observers:
    assert lab.haproxy_ports is not None
    addresses = [Address(n.host, n.pg_port) for n in lab.nodes.values()]
    writer = Writer(multi_host_dsn(addresses, "postgres", LAB_PASSWORD))
    old = lab.nodes[leader]
    direct = Writer(f"{old.dsn} {CLIENT_TIMEOUTS}", table="haagent_direct")
    read_dsn = (
        f"host={lab.haproxy_host} port={lab.haproxy_ports[1]} user=postgres "
        f"password={LAB_PASSWORD} dbname=postgres {CLIENT_TIMEOUTS}"
    )
    reader = Reader(read_dsn, query=f"SELECT max(id) FROM {writer.table}")
    return Observers(writer, direct, reader, Sampler(list(lab.nodes.values())))


def run_scenario(
    scenario: Scenario,
    base: Path,
    user: str | None,
    keep: bool = False,
    hosts: tuple[str, ...] = TEST_HOSTS,
) -> Result:
    """Run `scenario` in `base/<name>`; everything it starts is stopped before it returns."""
    started = time.monotonic()
    lab_dir = base / scenario.name
    if lab_dir.exists():
        shutil.rmtree(lab_dir)
    processes.make_dir(base, user, 0o755)
    lab = make_lab(scenario, lab_dir, user, hosts)
    faults = NetworkFaults() if scenario.network else None
    observers: Observers | None = None
    failures: list[str] = []
    notes: list[str] = []
    try:
        if faults is not None:
            faults.prepare()
        say(scenario.name, f"starting a three-node lab in {lab_dir}")
        lab.start(timeout=180)
        notes.append(f"bootstrap {time.monotonic() - started:.1f}s")
        leader = lab.leader()
        assert leader is not None
        if scenario.synchronous:
            lab.wait_for(lambda: sync_standby(lab, leader), "a standby in the sync key", 60)
        stats = lab.stats_url if lab.haproxy_ports else ""
        lab.wait_for(
            lambda: routes_match(stats, leader, lab.nodes, LAB_STATS), "HAProxy routes", 60
        )
        observers = make_observers(lab, leader)
        observers.start()
        time.sleep(BASELINE)
        before = data_dir_identity(lab)
        ctx = Context(lab, faults, scenario.timings, leader)
        offsets = {n: log_size(node.base / "haagent.log") for n, node in lab.nodes.items()}
        say(scenario.name, f"leader {leader}; injecting: {scenario.title}")
        try:
            scenario.inject(ctx)
        finally:
            if faults is not None:
                faults.heal()
        fault = ctx.marks["fault"]
        heal = ctx.marks.get("heal", fault)
        time_to_health: float | None = None
        writer = observers.writer

        def healthy() -> bool:  # writes flow again and every replica streams from one primary
            return bool(writer.acked) and writer.acked[-1][1] > heal and lab.healthy()

        try:
            bound = scenario.expect.health_within - (time.monotonic() - heal)
            lab.wait_for(healthy, "writes, one primary and every replica streaming", bound)
            time_to_health = time.monotonic() - heal
        except ProcessError as e:
            failures.append(
                f"not one primary with every replica streaming within "
                f"{scenario.expect.health_within:.0f}s after the fault ended: {e}"
            )
        time.sleep(AFTERWARDS)
        observers.stop()
        end = time.monotonic()
        lost = count_lost(observers.writer, failures)
        direct_lost = count_lost(observers.direct, failures, observers.writer.dsn)
        leader_after = lab.leader()
        after = data_dir_identity(lab)
        for name in lab.nodes:
            if before[name] != after[name]:
                failures.append(f"{name}'s data directory was replaced (PG_VERSION inode changed)")
        logs = {n: log_since(lab.nodes[n].base / "haagent.log", offsets[n]) for n in lab.nodes}
        samples = observers.sampler.samples
        split = observers.sampler.overlaps()
        if split:
            failures.append(
                f"{len(split)} samples saw several nodes accepting writes, first at "
                f"+{split[0].at - fault:.1f}s: {sorted(split[0].writable)}"
            )
        if scenario.synchronous and lost:
            failures.append(f"synchronous_mode on, yet {lost} acknowledged writes are lost")
        if direct_lost and (scenario.synchronous or scenario.expect.no_direct_loss):
            failures.append(
                f"{direct_lost} writes acknowledged to a client connected straight to the old "
                f"primary {leader} are missing from the healed cluster"
            )
        check_expectations(scenario, ctx, samples, logs, leader_after, failures)
        return Result(
            scenario=scenario.label,
            title=scenario.title,
            write_downtime=longest_gap([t for _, t in observers.writer.acked], fault, end),
            read_downtime=longest_gap(observers.reader.ok, fault, end),
            acknowledged=len(observers.writer.acked),
            lost=lost,
            direct_acknowledged=len(observers.direct.acked),
            direct_lost=direct_lost,
            split_brain_samples=len(split),
            samples=len(samples),
            time_to_health=time_to_health,
            leader_before=leader,
            leader_after=leader_after,
            failures=tuple(failures),
            notes=tuple(notes + ctx.notes),
            duration=time.monotonic() - started,
        )
    except (ProcessError, NetFaultError, OSError, psycopg.Error, AssertionError, KeyError) as e:
        failures.append(f"the scenario could not run: {type(e).__name__}: {e}")
        return Result(
            scenario.label, scenario.title, 0.0, 0.0, 0, None, 0, 0, None, "?", None,
            tuple(failures), tuple(notes), time.monotonic() - started,
        )  # fmt: skip
    finally:
        if observers is not None:
            observers.stop()
        try:
            lab.stop()
        except ProcessError as e:
            say(scenario.name, f"while stopping the lab: {e}")
        if faults is not None:
            faults.clear()
        if not failures and not keep:
            shutil.rmtree(lab_dir, ignore_errors=True)
        elif failures:
            say(scenario.name, f"FAILED; logs kept in {lab_dir}")


def sync_standby(lab: LabCluster, leader: str) -> bool:
    """The leader's `GET /cluster` lists a synchronous (or quorum) standby: the sync key
    names one."""
    code, body = lab.nodes[leader].api("/cluster")
    members = body.get("members", []) if code == 200 and isinstance(body, dict) else []
    roles = ("sync_standby", "quorum_standby")
    return any(isinstance(m, dict) and m.get("role") in roles for m in members)


def count_lost(writer: Writer, failures: list[str], dsn: str | None = None) -> int | None:
    """Acknowledged writes missing now, asking the primary through `dsn` (default the
    writer's own, which finds the primary)."""
    try:
        return len(writer.lost(dsn or writer.dsn))
    except psycopg.Error as e:
        failures.append(f"could not count lost writes on the primary: {e}")
        return None


FENCE_FIRED = re.compile(r"lease fence: .*can expire in (-?[0-9.]+)s")
FAST_STOP = re.compile(r"PostgreSQL stopped \(fast shutdown\) in ([0-9.]+)s")


def fence_note(log: str) -> str | None:
    """What the guard's lease fence did in this log: when it fired and how long the fast
    shutdown took (the margin it had left), or None when it never fired."""
    fired = FENCE_FIRED.search(log)
    if fired is None:
        return None
    margin = float(fired.group(1))
    stopped = FAST_STOP.search(log, fired.end())
    took = f"the fast shutdown took {stopped.group(1)}s" if stopped else "no fast shutdown seen"
    return f"the lease fence fired {margin:.1f}s before the lease could expire; {took}"


def check_expectations(
    scenario: Scenario,
    ctx: Context,
    samples: list[Sample],
    logs: dict[str, str],
    leader_after: str | None,
    failures: list[str],
) -> None:
    expect, old = scenario.expect, ctx.leader
    fault = ctx.marks["fault"]
    heal = ctx.marks.get("heal", fault)
    if expect.leader_change is True and leader_after in (None, old):
        failures.append(f"expected a failover away from {old}; the leader is {leader_after}")
    if expect.leader_change is False and leader_after != old:
        failures.append(f"expected {old} to stay the leader; the leader is {leader_after}")

    def during(a: float, b: float) -> list[Sample]:
        return [s for s in samples if a <= s.at <= b]

    if expect.no_primary_during_fault:
        writable = [s for s in during(fault + ctx.ttl, heal) if s.writable]
        if writable:
            failures.append(
                f"{len(writable)} samples saw a writable node more than ttl ({ctx.ttl}s) into a "
                f"fault without DCS quorum, first {sorted(writable[0].writable)} at "
                f"+{writable[0].at - fault:.1f}s"
            )
    if expect.primary_throughout:
        gaps = [s for s in during(fault, heal) if not s.writable]
        if gaps:
            failures.append(
                f"{len(gaps)} samples during the fault saw no writable node, first at "
                f"+{gaps[0].at - fault:.1f}s"
            )
    if expect.demote_within_ttl:
        old_writable = [s.at for s in during(fault, heal) if old in s.writable]
        last = max(old_writable, default=fault)
        if last - fault >= ctx.ttl:
            failures.append(
                f"{old} still accepted writes {last - fault:.1f}s into the fault, past its "
                f"lease (ttl {ctx.ttl}s)"
            )
        else:
            ctx.notes.append(f"{old} stopped accepting writes {last - fault:.1f}s into the fault")
    fenced = fence_note(logs.get(old, ""))
    if fenced:
        ctx.notes.append(f"{old}: {fenced}")
    if expect.rewind:
        log = logs.get(old, "")
        if "rewound (" in log:
            ctx.notes.append(f"{old} came back as a replica through pg_rewind")
        elif any(w in log for w in ("now following", "already following", "as a standby of")):
            ctx.notes.append(
                f"{old} came back as a replica without pg_rewind: its WAL had not diverged"
            )
        else:
            failures.append(f"{old} did not come back as a replica (its log shows no follow)")
