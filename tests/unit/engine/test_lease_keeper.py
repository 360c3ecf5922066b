"""The lease keeper and fencing, on the in-memory etcd and virtual time.

Outcomes asserted: when the key is renewed, what the fence and the watchdog were
told (and when), and what the keeper says to the HA loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from haagent.config.timing import Timings
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.fencing import Fencing
from haagent.engine.lease import LeaseKeeper, RenewFailed
from support.virtual_time import VirtualTime

TIMINGS = Timings(30, 10, 10)  # fence margin 5 s


@dataclass
class RecordingFence:
    holds: list[tuple[float, float, float]] = field(default_factory=list)  # (when, exp, margin)
    released: int = 0
    clock: VirtualTime | None = None

    @property
    def armed(self) -> bool:
        return bool(self.holds) and self.released < len(self.holds)

    def hold(self, expires: float, margin: float, lease: int | None = None) -> bool:
        assert self.clock is not None
        self.holds.append((self.clock.clock(), expires, margin))
        return True

    def release(self) -> None:
        self.released = len(self.holds)

    @property
    def stop_at(self) -> float:
        _, expires, margin = self.holds[-1]
        return expires - margin


@dataclass
class RecordingWatchdog:
    keepalives: list[float] = field(default_factory=list)
    armed: bool = False
    clock: VirtualTime | None = None

    def can_be_leader(self) -> tuple[bool, str | None]:
        return True, None

    def arm(self) -> bool:
        self.armed = True
        return True

    def keepalive(self) -> bool:
        assert self.clock is not None
        self.keepalives.append(self.clock.clock())
        return True

    def disarm(self) -> None:
        self.armed = False

    def reconfigure(self, ttl: int, loop_wait: int) -> None:
        pass

    def describe(self) -> str:
        return "recording"


@dataclass
class World:
    vt: VirtualTime
    store: MemoryStore
    dcs: MemoryDCS
    other: MemoryDCS
    fence: RecordingFence
    watchdog: RecordingWatchdog
    fencing: Fencing
    keeper: LeaseKeeper
    woken: list[float]
    failsafe: list[bool]
    members_confirm: list[bool]
    asked: list[float]


@pytest.fixture
def world() -> Iterator[World]:
    vt = VirtualTime()
    store = MemoryStore(vt.clock)
    dcs = MemoryDCS(store, "node1", ttl=30, retry_timeout=10)
    other = MemoryDCS(store, "node2", ttl=30, retry_timeout=10)
    fence = RecordingFence(clock=vt)
    watchdog = RecordingWatchdog(clock=vt)
    fencing = Fencing(watchdog, fence, lambda: TIMINGS, vt.clock)
    woken: list[float] = []
    failsafe = [False]
    members_confirm = [True]
    asked: list[float] = []

    async def confirm() -> bool:
        asked.append(vt.clock())
        return members_confirm[0]

    keeper = LeaseKeeper(
        dcs,
        fencing,
        timings=lambda: TIMINGS,
        failsafe=lambda: failsafe[0],
        clock=vt.clock,
        wake=lambda: woken.append(vt.clock()),
        stuck_after=lambda: 200.0,
        confirm_failsafe=confirm,
    )
    vt.run(dcs.open())
    vt.run(other.open())
    w = World(
        vt,
        store,
        dcs,
        other,
        fence,
        watchdog,
        fencing,
        keeper,
        woken,
        failsafe,
        members_confirm,
        asked,
    )
    vt.loop.create_task(keeper.run())
    yield w
    vt.close()


def lead(w: World) -> float:
    """Take the key and arm the fencing; returns when."""
    assert w.vt.run(w.keeper.take())
    assert w.keeper.expires is not None
    assert w.fencing.arm(w.keeper.expires)
    return w.vt.clock()


def expire_time(w: World) -> float:
    lease = w.dcs.lease_id
    assert lease is not None
    return w.vt.clock() + w.store.lease_ttl(lease)


def test_renewals_go_on_while_the_ha_loop_is_busy(world: World) -> None:
    w = world
    started = lead(w)
    # The HA loop is busy with something long (a CHECKPOINT): it shows life, renews nothing.
    for _ in range(9):
        w.vt.advance(10)
        w.keeper.alive()
    assert w.store.lease_ttl(w.dcs.lease_id or 0) > 15  # renewed every loop_wait
    # The fence was moved on after each renewal and never reached.
    assert len(w.fence.holds) >= 9
    assert all(stop > when for when, exp, margin in w.fence.holds for stop in [exp - margin])
    assert w.fence.stop_at > w.vt.clock()
    # The watchdog was kept alive at each renewal, and only then.
    assert len(w.watchdog.keepalives) >= 9
    assert w.watchdog.keepalives[0] >= started


def test_the_fence_deadline_is_never_later_than_etcd_s_expiry(world: World) -> None:
    w = world
    lead(w)
    for _ in range(20):
        w.vt.advance(3.7)
        w.keeper.alive()
        _, expires, margin = w.fence.holds[-1]
        assert expires <= expire_time(w) + 1e-6
        assert margin == TIMINGS.fence_margin


def test_a_failed_renewal_fires_the_fence_at_once_and_wakes_the_loop(world: World) -> None:
    w = world
    lead(w)
    w.vt.advance(1)
    last = w.keeper.expires
    assert last is not None
    w.store.set_latency("node1", float("inf"))  # etcd stops answering node1
    w.vt.advance(TIMINGS.loop_wait + TIMINGS.retry_timeout + 1)
    assert w.keeper.failure is not None and not w.keeper.lost
    fired = w.fence.holds[-1]
    renewed_at = last - TIMINGS.ttl
    # Fired (stop now) within loop_wait + retry_timeout of the last good renewal ...
    assert fired[0] - renewed_at <= TIMINGS.demote_within + 1e-6
    assert fired[1] - fired[2] <= fired[0] + 1e-6
    # ... with the immediate shutdown due at the old expiry, and the HA loop told.
    assert fired[1] == last
    assert w.woken and w.woken[-1] == fired[0]


def test_a_lost_key_stops_the_renewals(world: World) -> None:
    w = world
    lead(w)
    w.vt.run(w.other.delete_cluster())  # someone deletes everything (haactl remove)
    w.vt.advance(2)
    with pytest.raises(RenewFailed) as caught:
        w.vt.run(w.keeper.renew())
    assert caught.value.lost
    assert w.keeper.lost and not w.keeper.keeping and w.keeper.expires is None
    holds = len(w.fence.holds)
    w.vt.advance(60)
    assert len(w.fence.holds) == holds  # nothing renewed, nothing extended


def test_failsafe_mode_asks_the_members_instead_of_firing(world: World) -> None:
    w = world
    lead(w)
    w.failsafe[0] = True
    w.vt.advance(1)
    renewed = w.fence.holds[-1][1] - TIMINGS.ttl
    w.store.partition("node1")
    w.vt.advance(TIMINGS.loop_wait + TIMINGS.retry_timeout + 1)
    assert w.keeper.failure is not None and w.keeper.failsafe_confirmed
    # Asked as soon as the renewal failed, and their confirmation moved the fence on as a
    # renewal would: the lease holds ttl from when they were asked.
    assert w.asked[0] - renewed <= TIMINGS.demote_within + 1e-6
    when, expires, margin = w.fence.holds[-1]
    assert expires == w.asked[-1] + TIMINGS.ttl and expires - margin > when
    # One member stops confirming: the fence fires at once.
    w.members_confirm[0] = False
    w.vt.advance(TIMINGS.retry_timeout + 2)
    when, expires, margin = w.fence.holds[-1]
    assert expires - margin <= when + 1e-6
    assert not w.keeper.failsafe_confirmed


def test_a_wedged_ha_loop_lets_the_key_expire(world: World) -> None:
    w = world
    lead(w)
    w.vt.advance(250)  # the HA loop shows no life for longer than stuck_after (200 s)
    assert w.store.lease_ttl(w.dcs.lease_id or 0) == 0  # expired in etcd
    assert w.fence.stop_at < w.vt.clock()  # the fence's deadline passed: PostgreSQL stopped


def test_renew_reuses_a_fresh_renewal(world: World) -> None:
    w = world
    lead(w)
    holds = len(w.fence.holds)
    w.vt.run(w.keeper.renew())  # the take was just now
    assert len(w.fence.holds) == holds
    w.vt.advance(2)
    w.vt.run(w.keeper.renew())
    assert len(w.fence.holds) == holds + 1


def test_release_stops_renewing_and_deletes_the_key(world: World) -> None:
    w = world
    lead(w)
    assert w.vt.run(w.keeper.release())
    assert w.dcs.view().leader is None and w.keeper.expires is None
    holds = len(w.fence.holds)
    w.vt.advance(60)
    assert len(w.fence.holds) == holds


def test_fencing_fires_and_disarms_only_when_armed(world: World) -> None:
    w = world
    w.fencing.fire(None, "test")
    assert w.fence.holds == []  # never armed: nothing to stop
    lead(w)
    w.fencing.disarm()
    assert not w.fence.armed and not w.watchdog.armed
    w.fencing.extend(2000.0)
    assert not w.fence.armed  # extending does not arm


def test_a_ttl_raised_during_a_renewal_never_puts_the_fence_past_etcds_expiry() -> None:
    # The HA loop applies a new config (ttl 30 -> 60) between etcd's answer to a renewal
    # and the keeper's handling of it: the key is still on its 30 s lease.
    vt = VirtualTime()
    try:
        store = MemoryStore(vt.clock)
        dcs = MemoryDCS(store, "node1", ttl=30, retry_timeout=10)
        timings = [Timings(30, 10, 10)]
        fence = RecordingFence(clock=vt)
        watchdog = RecordingWatchdog(clock=vt)
        fencing = Fencing(watchdog, fence, lambda: timings[0], vt.clock)
        keeper = LeaseKeeper(
            dcs,
            fencing,
            timings=lambda: timings[0],
            failsafe=lambda: False,
            clock=vt.clock,
            wake=lambda: None,
            stuck_after=lambda: 999.0,
        )
        vt.run(dcs.open())
        assert vt.run(keeper.take())
        assert keeper.expires is not None and fencing.arm(keeper.expires)
        vt.advance(5)
        real = dcs.renew_leader

        async def renew_then_the_config_changes() -> None:
            await real()
            timings[0] = Timings(60, 10, 10)
            dcs.set_ttl(60)

        dcs.renew_leader = renew_then_the_config_changes  # type: ignore[method-assign]
        vt.run(keeper.renew())
        _, expires, _ = fence.holds[-1]
        assert expires <= vt.clock() + store.lease_ttl(dcs.lease_id or 0) + 1e-6
        # The next renewal moves the key to a 60 s lease, and only then does the fence follow.
        dcs.renew_leader = real  # type: ignore[method-assign]
        vt.advance(2)
        vt.run(keeper.renew())
        _, expires, _ = fence.holds[-1]
        assert store.lease_ttl(dcs.lease_id or 0) == 60
        assert expires == pytest.approx(vt.clock() + 60)
    finally:
        vt.close()
