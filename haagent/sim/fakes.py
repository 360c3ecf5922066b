"""The simulation's watchdog and peer client."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member
from haagent.sim.postgres import FakeWorld


@dataclass
class FakeWatchdog:
    usable: bool = True
    armed: bool = False
    keepalives: int = 0

    def can_be_leader(self) -> tuple[bool, str | None]:
        return (True, None) if self.usable else (False, "no watchdog device (simulated)")

    def arm(self) -> bool:
        self.armed = self.usable
        return self.usable

    def keepalive(self) -> bool:
        if self.armed:
            self.keepalives += 1
        return self.armed

    def disarm(self) -> None:
        self.armed = False

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        pass

    def describe(self) -> str:
        return "armed" if self.armed else "disarmed"


class FakePeers:
    def __init__(
        self, world: FakeWorld, me: str, on_failsafe: Callable[[str], None] | None = None
    ) -> None:
        self.world = world
        self.me = me
        self.on_failsafe = on_failsafe

    async def positions(self, members: Sequence[Member], timeout: float) -> dict[str, PeerPosition]:
        result = {}
        for m in members:
            node = self.world.nodes.get(m.name)
            if node is None or not node.running or not self.world.reachable(self.me, m.name):
                result[m.name] = PeerPosition(name=m.name, reachable=False)
                continue
            result[m.name] = PeerPosition(
                name=m.name,
                reachable=True,
                lsn=node.lsn,
                timeline=node.timeline,
                running=True,
                in_recovery=node.in_recovery,
                failover_priority=m.failover_priority,
                nofailover=m.nofailover,
            )
        return result

    async def confirm_failsafe(
        self, members: Mapping[str, str], leader: str, timeout: float
    ) -> bool:
        others = [n for n in members if n != leader]
        if not all(self.world.reachable(self.me, n) for n in others):
            return False
        if self.on_failsafe is not None:
            for name in others:
                self.on_failsafe(name)
        return True
