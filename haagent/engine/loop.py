"""The HA loop: observe, decide, publish, act; wake on events, not on a timer alone.

`loop_wait` is the idle heartbeat.  A change of the leader or failover key
(DCS watch), the postmaster's death, and an API request wake the loop at once;
a decision that is one step of a sequence (`again`) or a failed action runs the
next cycle right away.

What the loop remembers between cycles is the `MemoryKeeper`'s, changed only by
the core's functions; the settings and the dynamic config are the `Configuration`'s;
the time comes from the injected `Clocks`.  The request handler and the daemon go
through the methods under "requests" below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from haagent.config.model import DynamicConfig, Settings
from haagent.config.replica_methods import replica_methods
from haagent.core import Snapshot, decide
from haagent.core.callbacks import CallbackEvent, callback_role
from haagent.core.events import CycleFacts, decision_events, outcome_events
from haagent.core.memory import Memory, Observation
from haagent.core.reasons import Code
from haagent.core.roles import Role, allowed, role_shown
from haagent.core.snapshot import Decision, ManualRequest
from haagent.dcs.errors import DCSError
from haagent.dcs.protocol import DCS
from haagent.engine.callbacks import CallbackQueue
from haagent.engine.clock import Clocks
from haagent.engine.configuration import Configuration
from haagent.engine.executor import Executor, Outcome
from haagent.engine.fatal import AgentStop
from haagent.engine.fencing import Fencing, NoFence
from haagent.engine.history import EventHistory
from haagent.engine.lease import LeaseKeeper
from haagent.engine.member import postgres_state, published_role
from haagent.engine.memory import MemoryKeeper
from haagent.engine.ports import LeaseFence, PeerClient, WatchdogControl
from haagent.engine.status import PublishedStatus
from haagent.postgres.local import PostgresControl
from haagent.postgres.model import PostgresStatus

log = logging.getLogger("haagent.engine")

MAX_IMMEDIATE_CYCLES = 50
HISTORY_DRAIN = 1.0  # seconds the event history may take to write its queue on shutdown


class HaLoop:
    def __init__(
        self,
        config: Configuration,
        dcs: DCS,
        pg: PostgresControl,
        watchdog: WatchdogControl,
        peers: PeerClient,
        *,
        clocks: Clocks,
        fence: LeaseFence | None = None,
        fallback_fence: Callable[[], LeaseFence] | None = None,
        version: str = "",
        on_decision: Callable[[Decision, float], None] | None = None,
        on_refused_role_change: Callable[[Role, Role], None] | None = None,
    ) -> None:
        self.configuration = config
        self.dcs = dcs
        self.pg = pg
        self.watchdog = watchdog
        self.clocks = clocks
        self.clock = clocks.monotonic
        self.version = version
        self.on_decision = on_decision
        self.on_refused_role_change = on_refused_role_change
        self.memory = MemoryKeeper(clocks)
        self.peers = peers
        pg_settings = config.settings.postgresql
        self.callbacks = CallbackQueue(
            pg_settings.callbacks,
            config.settings.scope,
            float(pg_settings.callback_timeout),
            clock=clocks.monotonic,
        )
        self._acting: str | None = None  # the reason code of the decision being carried out
        pg.add_reload_listener(self._postgres_reloaded)
        self.wake = asyncio.Event()
        self.fencing = Fencing(
            watchdog,
            fence or NoFence(),
            config.timings,
            self.clock,
            fallback=fallback_fence,
            lease_id=lambda: dcs.lease_id,
        )
        self.keeper = LeaseKeeper(
            dcs,
            self.fencing,
            timings=config.timings,
            failsafe=lambda: self.config.failsafe_mode,
            clock=self.clock,
            wake=self.wake.set,
            stuck_after=self._stuck_after,
            confirm_failsafe=self._confirm_failsafe,
        )
        self.executor = Executor(
            config,
            dcs,
            pg,
            self.fencing,
            self.keeper,
            peers,
            self.memory,
            clocks=clocks,
            version=version,
            callbacks=self.callbacks,
        )
        self.history = EventHistory(dcs, config.settings.name, lambda: clocks.wall().timestamp())
        self._history_task: asyncio.Task[None] | None = None
        self._decided: CycleFacts | None = None  # the last decision, for the history
        self._concluded: CycleFacts | None = None  # the last cycle's outcome, for the history
        self._cycle_done = asyncio.Event()  # set when the cycle under way completes
        self._last_reason: tuple[str, str] | None = None
        self._stopping = False
        self._keeper_task: asyncio.Task[None] | None = None
        self.loop_count = 0
        self._status = self._initial_status()

    @property
    def settings(self) -> Settings:
        return self.configuration.settings

    @property
    def config(self) -> DynamicConfig:
        """The dynamic config in effect."""
        return self.configuration.dynamic

    @property
    def state(self) -> Memory:
        """What the loop remembers now (a value; see `haagent.core.memory`)."""
        return self.memory.value

    def _stuck_after(self) -> float:
        """No sign of life from the HA loop for this long: it is wedged (see lease.py)."""
        c = self.config
        return c.loop_wait + c.retry_timeout + 3 * self.settings.postgresql.pg_ctl_timeout + 30

    # --- published status

    def status(self) -> PublishedStatus:
        return self._status

    def _initial_status(self) -> PublishedStatus:
        return PublishedStatus(
            scope=self.settings.scope,
            name=self.settings.name,
            role="uninitialized",
            state="stopped",
            holds_leader_key=False,
            postgres=PostgresStatus(False, False, False),
            cluster=self.dcs.view(),
            config=self.config,
            tags=dict(self.settings.tags.raw),
            api_url=self.settings.restapi.api_url,
            conn_url=self.settings.postgresql.conn_url,
            version=self.version,
            reason_code="starting",
            reason_text="the agent is starting",
        )

    def _publish(
        self, pg: PostgresStatus, role: Role, holds_key: bool, decision: Decision | None
    ) -> None:
        previous = self._status
        view = self.dcs.view()
        wall = self.clocks.wall().timestamp()
        leaderless = None if view.leader is not None else (previous.leaderless_since or wall)
        self._status = PublishedStatus(
            scope=self.settings.scope,
            name=self.settings.name,
            role=published_role(role, pg),
            state=postgres_state(pg, role),
            holds_leader_key=holds_key,
            leader_expires_at=self.keeper.expires if holds_key else None,
            postgres=pg,
            cluster=view,
            config=self.config,
            tags=dict(self.settings.tags.raw),
            paused=self.config.pause,
            dcs_last_seen=self.memory.etcd_seen_at,
            dcs_ok=self.state.dcs_ok,
            loop_finished_at=self.clock(),
            loop_finished_wall=wall,
            leaderless_since=leaderless,
            loop_count=self.loop_count,
            loop_duration=previous.loop_duration,
            failsafe_active=self.keeper.failsafe_confirmed and not self.state.dcs_ok,
            reason_code=str(decision.reason.code) if decision else previous.reason_code,
            reason_text=decision.reason.text if decision else previous.reason_text,
            pending_restart=pg.pending_restart,
            watchdog=self.fencing.describe(),
            watchdog_failed=not self.fencing.can_be_leader()[0],
            pre_promote_failed=self._pre_promote_backoff(),
            api_url=self.settings.restapi.api_url,
            conn_url=self.settings.postgresql.conn_url,
            version=self.version,
        )

    def _pre_promote_backoff(self) -> bool:
        """pre_promote cancelled this node's promotion less than ttl ago."""
        failed = self.state.pre_promote_failed
        return failed is not None and self.clock() - failed[0] < self.config.ttl

    # --- callbacks

    def _postgres_reloaded(self) -> None:
        """PostgreSQL re-read its configuration: `on_reload`, as Patroni runs it."""
        role = callback_role(self._status.postgres)
        self.callbacks.fire(CallbackEvent("on_reload", role), self._acting or "config_changed")

    def _announce_running(self, pg: PostgresStatus) -> None:
        """A PostgreSQL found running that no callback announced yet (the agent adopted it
        at start): `on_start` with its role, as Patroni does."""
        if self.callbacks.enabled and not self.callbacks.announced and pg.running and pg.accepting:
            self.callbacks.fire(CallbackEvent("on_start", callback_role(pg)), "adopted")

    # --- configuration

    def _apply_config(self) -> None:
        if not self.configuration.adopt(self.dcs.view().config):
            return
        config = self.config
        self.dcs.set_ttl(config.ttl)
        self.dcs.set_retry_timeout(config.retry_timeout)
        self.fencing.reconfigure(config.ttl, config.loop_wait)
        self.pg.set_dynamic_config(config)
        log.info(
            "dynamic config: ttl=%s loop_wait=%s retry_timeout=%s synchronous_mode=%s pause=%s",
            config.ttl,
            config.loop_wait,
            config.retry_timeout,
            config.synchronous_mode,
            config.pause,
        )

    # --- one cycle

    async def observe(self) -> Snapshot:
        if not self.state.dcs_ok:
            try:
                await asyncio.wait_for(self.dcs.refresh(), self.config.retry_timeout)
                self.memory.etcd_answered()
                log.info("etcd is reachable again")
            except (DCSError, TimeoutError) as e:
                self.memory.etcd_unreachable(str(e) or "etcd did not answer within retry_timeout")
        self._apply_config()
        pg = await self.pg.status()
        now = self.clock()
        view = self.dcs.view()
        lease = self.keeper.facts()
        if lease.lost and view.leader_name == self.settings.name:
            # etcd said the key is not ours any more; the watch has not caught up yet.
            view = replace(view, leader=None)
        seen = Observation(self.settings.name, pg, view, self.config, self.loop_count == 0)
        self.memory.observed(seen, now)
        ok, why = self.fencing.can_be_leader()
        memory = self.state
        return Snapshot(
            name=self.settings.name,
            now=now,
            wall=self.clocks.wall(),
            tags=self.settings.tags,
            config=self.config,
            cluster=view,
            dcs_ok=memory.dcs_ok,
            postgres=pg,
            local=memory.facts(
                lease_expires=lease.expires,
                renew_failure=lease.failure,
                failsafe_confirmed=lease.failsafe_confirmed,
                now=now,
                ttl=self.config.ttl,
            ),
            watchdog_ok=ok,
            watchdog_reason=why,
            peers=memory.peers,
            dcs_error=memory.dcs_error,
            clone_without_leader=replica_methods(
                self.settings.postgresql, self.config
            ).without_leader,
        )

    async def _confirm_failsafe(self) -> bool:
        """With etcd away in failsafe mode: POST /failsafe to every member listed in the
        `failsafe` key; True only if every one confirms (they then do not race for ttl)."""
        members = dict(self.dcs.view().failsafe or {})
        if not members or self.settings.name not in members:
            return False
        timeout = min(2.0, self.config.retry_timeout / 2)
        confirmed = await self.peers.confirm_failsafe(members, self.settings.name, timeout)
        log.info("failsafe: %s", "every member confirmed" if confirmed else "not confirmed")
        return confirmed

    async def cycle(self) -> tuple[Decision, Outcome]:
        started = self.clock()
        snapshot = await self.observe()
        decision = decide(snapshot)
        self.memory.decided()
        self._check_role_change(self.state.role, decision)
        self._log(decision)
        self._record_decision(snapshot, decision)
        if decision.role not in (Role.PRIMARY, Role.STANDBY_LEADER):
            # Say "not primary" before the first action that stops writes.
            self._publish(snapshot.postgres, decision.role, False, decision)
        self._acting = str(decision.reason.code)
        try:
            outcome = await self.executor.run(decision, snapshot)
        finally:
            self._acting = None
        self.memory.concluded(decision, failed=outcome.failure is not None)
        if outcome.failure is not None:
            log.warning("%s: %s", decision.reason.code, outcome.failure)
        pg = await self.pg.status()
        self._announce_running(pg)
        view = self.dcs.view()
        holds = view.leader is not None and view.leader.name == self.settings.name
        role = role_shown(self.state.role, holds, pg)
        self.loop_count += 1
        self.keeper.alive()  # a whole cycle done: progress (a cycle that keeps failing is not)
        leading = role in (Role.PRIMARY, Role.STANDBY_LEADER)
        self._publish(pg, role, holds and leading, decision)
        self._record_outcome(snapshot, decision, outcome, pg)
        duration = self.clock() - started
        self._status = replace(self._status, loop_duration=duration)
        if self.on_decision is not None:
            self.on_decision(decision, duration)
        done, self._cycle_done = self._cycle_done, asyncio.Event()
        done.set()
        return decision, outcome

    def _facts(
        self, snapshot: Snapshot, decision: Decision, role: str, failure: str | None = None
    ) -> CycleFacts:
        asked = snapshot.cluster.failover
        return CycleFacts(
            member=self.settings.name,
            role=role,
            leader=self.dcs.view().leader_name,
            code=str(decision.reason.code),
            text=decision.reason.text,
            paused=self.config.pause,
            requested=None if asked is None else ("switchover" if asked.leader else "failover"),
            failure=failure,
        )

    def _record_decision(self, snapshot: Snapshot, decision: Decision) -> None:
        """The history's entries of a decision, queued before its actions run."""
        facts = self._facts(snapshot, decision, published_role(decision.role, snapshot.postgres))
        pg = snapshot.postgres
        for new in decision_events(self._decided, facts):
            self.history.record(new, timeline=pg.timeline, lsn=pg.lsn)
        self._decided = facts

    def _record_outcome(
        self, snapshot: Snapshot, decision: Decision, outcome: Outcome, pg: PostgresStatus
    ) -> None:
        """The history's entries of what the actions did (core/events.py)."""
        failure = None if outcome.failure is None else str(outcome.failure)
        facts = self._facts(snapshot, decision, self._status.role, failure)
        for new in outcome_events(self._concluded, facts):
            self.history.record(new, timeline=pg.timeline, lsn=pg.lsn)
        self._concluded = facts

    def _check_role_change(self, before: Role, decision: Decision) -> None:
        """A decision whose role change is not in the transition table (core/roles.py):
        one line with its reason, and counted (`on_refused_role_change`)."""
        if allowed(before, decision.role):
            return
        log.warning(
            "role change %s -> %s is not in the transition table (%s: %s)",
            before, decision.role, decision.reason.code, decision.reason.text,
        )  # fmt: skip
        if self.on_refused_role_change is not None:
            self.on_refused_role_change(before, decision.role)

    def _log(self, decision: Decision) -> None:
        key = (str(decision.reason.code), decision.reason.text)
        steady = decision.reason.code in (Code.LEADER_RENEWED, Code.FOLLOWING, Code.PAUSED)
        if key != self._last_reason or not steady:
            actions = ", ".join(type(x).__name__ for x in decision.actions) or "none"
            log.info("%s: %s [actions: %s]", decision.reason.code, decision.reason.text, actions)
        self._last_reason = key

    # --- the loop

    def start_keeper(self) -> None:
        """Start the lease keeper's background renewals (idempotent; `close()` stops it)."""
        if self._keeper_task is None or self._keeper_task.done():
            self._keeper_task = asyncio.create_task(self.keeper.run(), name="lease keeper")
        if self._history_task is None or self._history_task.done():
            self._history_task = asyncio.create_task(self.history.run(), name="event history")

    async def close(self) -> None:
        """Stop the lease keeper (after `shutdown()`): nothing renews the key any more.
        The event history gets up to HISTORY_DRAIN seconds to write what is queued; the
        callbacks still queued (a shutdown's on_stop) run within
        `postgresql.callback_timeout`."""
        task, self._keeper_task = self._keeper_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        history, self._history_task = self._history_task, None
        if history is not None:
            await self.history.drained(HISTORY_DRAIN)
            history.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await history
        await self.callbacks.close(self.callbacks.timeout)

    async def run(self) -> None:
        self.start_keeper()
        immediate = 0
        while not self._stopping:
            try:
                decision, outcome = await self.cycle()
            except AgentStop:
                raise  # retrying cannot fix it: the daemon stops and says why
            except Exception:
                log.exception("HA cycle failed; trying again after loop_wait")
                await self._wait(self.config.loop_wait)
                continue
            again = decision.again or outcome.failure is not None
            if again and immediate < MAX_IMMEDIATE_CYCLES:
                immediate += 1
                if outcome.failure is not None:
                    await self._wait(min(1.0, 0.05 * immediate))
                continue
            immediate = 0
            await self._wait(
                min(1.0, self.config.loop_wait) if decision.soon else self.config.loop_wait
            )

    async def _wait(self, seconds: float) -> None:
        waiters = [
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(self.dcs.changed.wait()),
            asyncio.ensure_future(self.pg.postmaster_died.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            for w in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
        self.wake.clear()
        self.dcs.changed.clear()
        self.pg.postmaster_died.clear()

    async def shutdown(self) -> None:
        """Hand over cleanly: the last cycle stops PostgreSQL and releases the key.

        Fencing stays armed unless that cycle confirmed PostgreSQL is no longer a
        primary (or maintenance mode): the caller's guard then stops it on exit."""
        self._stopping = True
        self.memory.shutdown_asked()
        await self.cycle()

    # --- requests (the REST API's request handler, the daemon, the simulation)

    def wake_up(self) -> None:
        """Run a cycle now rather than after loop_wait."""
        self.wake.set()

    async def next_cycle(self, timeout: float | None = None) -> bool:
        """Wait until a cycle completes (one under way counts); False after `timeout`."""
        done = self._cycle_done
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def ask(self, manual: ManualRequest) -> ManualRequest | None:
        """Hand a restart or a reinitialize to the next cycle (and run it now); the request
        already in progress instead, or None."""
        busy = self.memory.ask(manual)
        if busy is None:
            self.wake_up()
        return busy

    @property
    def manual_request(self) -> ManualRequest | None:
        """The restart or reinitialize asked for and not carried out yet."""
        return self.state.manual

    def failsafe_leader_heard(self) -> None:
        """The leader asked this node to confirm it in failsafe mode (POST /failsafe)."""
        self.memory.failsafe_leader_heard()
