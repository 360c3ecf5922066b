"""The simulation's watchdog, guard (lease fence) and peer client.

The guard and the watchdog belong to the simulated world, not to the agent: they
keep acting while the agent is frozen, as the real guard process and the kernel's
watchdog do.  The simulation checks them whenever its clock moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from haagent.core.snapshot import PeerPosition
from haagent.dcs.model import Member
from haagent_lab.sim.postgres import FakeWorld


@dataclass
class FakeWatchdog:
    """A device with a timeout: armed and not kept alive for `timeout` seconds, it fires.

    `enabled` False is watchdog.mode off; `required` with an unusable device refuses
    leadership, as watchdog.mode required does."""

    clock: Callable[[], float]
    enabled: bool = False
    usable: bool = True
    required: bool = False
    timeout: float = 25.0
    armed: bool = False
    keepalives: int = 0
    last_keepalive: float = 0.0

    def can_be_leader(self) -> tuple[bool, str | None]:
        if self.required and not self.usable:
            return False, "no watchdog device (simulated)"
        return True, None

    def arm(self) -> bool:
        if not self.enabled or not self.usable:
            return not self.required
        if not self.armed:
            self.armed, self.last_keepalive = True, self.clock()
        return True

    def keepalive(self) -> bool:
        if self.armed:
            self.keepalives += 1
            self.last_keepalive = self.clock()
        return self.armed

    def disarm(self) -> None:
        self.armed = False

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        pass

    def describe(self) -> str:
        return "armed" if self.armed else "disarmed" if self.enabled else "off"

    def fires_at(self) -> float | None:
        return self.last_keepalive + self.timeout if self.armed else None


@dataclass
class SimGuard:
    """The guard process: the lease fence and the agent-death stop, outside the agent.

    As the real guard, once it fired it stays armed with its past deadline (the
    simulation stops any PostgreSQL that runs meanwhile) until a new lease or a release.
    `dead`: the process is gone; `hold` says so, and the agent falls back to its own fence.
    """

    armed: bool = False
    expires: float = 0.0
    margin: float = 0.0
    holds: int = 0
    dead: bool = False

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        if self.dead:
            return False
        self.armed, self.expires, self.margin = True, expires, margin
        self.holds += 1
        return True

    def release(self) -> None:
        self.armed = False

    def stop_at(self) -> float | None:
        return self.expires - self.margin if self.armed and not self.dead else None


class SimLocalFence:
    """The fence inside the agent (the fallback when the guard is gone): a timer on the
    agent's own event loop, so it fires only while the agent runs."""

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._timer: asyncio.TimerHandle | None = None
        self.armed = False

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        self.release()
        self.armed = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(expires - margin, self._fired)
        return True

    def _fired(self) -> None:
        self._timer, self.armed = None, False
        self._fire()

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self.armed = None, False


class FakePeers:
    def __init__(
        self,
        world: FakeWorld,
        me: str,
        on_failsafe: Callable[[str], None] | None = None,
        watchdog_failed: Callable[[str], bool] | None = None,
    ) -> None:
        self.world = world
        self.me = me
        self.on_failsafe = on_failsafe
        self.watchdog_failed = watchdog_failed or (lambda name: False)

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
                nofailover=m.nofailover or self.watchdog_failed(m.name),
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
