"""The engine's memory between cycles, held in one place.

`MemoryKeeper` holds the `Memory` (haagent.core.memory) that the next decision's
`LocalFacts` come from.  Every change is the value a function of the core returns:
the loop reports observations and decisions, the executor each action's outcome
(`haagent.core.outcomes.after`), the request handler what the REST API asks.  It also
keeps the wall-clock time of the last contact with etcd, which is published
(`dcs_last_seen`) and never decided on.
"""

from __future__ import annotations

from haagent.core import memory as m
from haagent.core.actions import Action
from haagent.core.memory import Memory
from haagent.core.outcomes import ActionOutcome, after
from haagent.core.snapshot import Decision, ManualRequest
from haagent.engine.clock import Clocks


class MemoryKeeper:
    def __init__(self, clocks: Clocks) -> None:
        self._clocks = clocks
        self._value = Memory()
        self.etcd_seen_at: float | None = None  # unix seconds of the last answer from etcd

    @property
    def value(self) -> Memory:
        return self._value

    def observed(self, seen: m.Observation, now: float) -> None:
        self._value = m.observed(self._value, seen, now)

    def record(self, action: Action, outcome: ActionOutcome) -> None:
        self._value = after(self._value, action, outcome, self._clocks.monotonic())
        if outcome.etcd_answered:
            self._etcd_seen()

    def decided(self) -> None:
        self._value = m.decided(self._value)

    def concluded(self, decision: Decision, failed: bool) -> None:
        self._value = m.concluded(self._value, decision, failed)

    def etcd_answered(self) -> None:
        self._value = m.etcd_answered(self._value)
        self._etcd_seen()

    def etcd_unreachable(self, why: str) -> None:
        self._value = m.etcd_unreachable(self._value, why)

    def ask(self, manual: ManualRequest) -> ManualRequest | None:
        """Hand a restart or a reinitialize to the next decision; the request already in
        progress instead (then nothing changes), or None."""
        busy = self._value.manual
        self._value = m.asked(self._value, manual)
        return busy

    def failsafe_leader_heard(self) -> None:
        self._value = m.failsafe_leader_heard(self._value, self._clocks.monotonic())

    def shutdown_asked(self) -> None:
        self._value = m.shutdown_asked(self._value)

    def _etcd_seen(self) -> None:
        self.etcd_seen_at = self._clocks.wall().timestamp()
