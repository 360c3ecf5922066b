"""A failure scenario: the cluster it needs, the fault it injects, what must hold afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from haagent_lab.lab.cluster import LabCluster
from haagent_lab.lab.netfault import NetworkFaults

# The two timing profiles every scenario runs at: the lab's fast timings and Patroni's
# defaults (a scenario that pins its own timings, like the CPU storm, keeps them).
FAST_TIMINGS: Mapping[str, int] = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3}
DEFAULT_TIMINGS: Mapping[str, int] = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
PROFILES: Mapping[str, Mapping[str, int]] = {"fast": FAST_TIMINGS, "patroni": DEFAULT_TIMINGS}


@dataclass(frozen=True)
class Expect:
    """What a scenario must show on top of the invariants every scenario checks."""

    # True: another node is the primary at the end; False: the same one; None: either.
    leader_change: bool | None = None
    # The cluster lost its DCS quorum: no node may accept writes from `ttl` after the
    # fault until it heals (the old primary's lease is over by then).
    no_primary_during_fault: bool = False
    # A node accepts writes in every sample of the fault (failsafe mode keeps the primary).
    primary_throughout: bool = False
    # The old primary comes back as a replica: through pg_rewind when its WAL diverged
    # (it usually has), by just following the new primary when it had not.
    rewind: bool = False
    # The old primary stops accepting writes before its leader key can expire (ttl).
    demote_within_ttl: bool = False
    # Seconds from the end of the fault until one primary and every replica streaming.
    health_within: float = 120.0
    # A client connected straight to the old primary (no target_session_attrs) loses no
    # acknowledged write even with asynchronous replication: the fence shuts down cleanly,
    # so the replicas receive all WAL before one is promoted.  (Always checked in
    # synchronous mode.)
    no_direct_loss: bool = False


@dataclass
class Context:
    """What a scenario's `inject` works with: the running lab and the fault timeline."""

    lab: LabCluster
    faults: NetworkFaults | None
    timings: Mapping[str, int]
    leader: str
    marks: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ttl(self) -> int:
        return self.timings["ttl"]

    def replicas(self) -> list[str]:
        return sorted(n for n in self.lab.nodes if n != self.leader)

    def mark(self, name: str) -> float:
        self.marks[name] = time.monotonic()
        return self.marks[name]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def isolate(self, *names: str) -> None:
        assert self.faults is not None, "this scenario needs network=True"
        self.faults.isolate({self.lab.index_of(n): self.lab.nodes[n].host for n in names})

    def heal_network(self) -> None:
        assert self.faults is not None
        self.faults.heal()

    def wait_for_new_leader(self, timeout: float = 120.0) -> str:
        """Wait until a node other than the old leader is the only primary; returns it."""
        took = self.lab.wait_for(
            lambda: self.lab.leader() not in (None, self.leader), "a new leader", timeout
        )
        new = self.lab.leader()
        assert new is not None
        self.note(f"{new} became the leader {took:.1f}s after waiting began")
        return new


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Context], None]  # marks "fault" (and "heal" when it ends the fault)
    dynamic: Mapping[str, Any] = field(default_factory=dict)
    watchdog_simulator: bool = False
    network: bool = False  # needs nftables (haagent_lab.lab.netfault)
    expect: Expect = Expect()
    fast: bool = False  # part of the CI subset
    profile: str = "fast"  # the timing profile (PROFILES) this run uses

    @property
    def timings(self) -> Mapping[str, int]:
        base = PROFILES[self.profile]
        return {k: int(self.dynamic.get(k, v)) for k, v in base.items()}

    @property
    def label(self) -> str:
        """The scenario's name with its timing profile: `switchover@patroni`."""
        return f"{self.name}@{self.profile}"

    def at(self, profile: str) -> Scenario:
        if profile not in PROFILES:
            raise ValueError(f"unknown timing profile {profile!r}: {', '.join(PROFILES)}")
        return replace(self, profile=profile)

    @property
    def synchronous(self) -> bool:
        return bool(self.dynamic.get("synchronous_mode", False))
