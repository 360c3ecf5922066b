"""Runs a decision's actions in order against the real (or fake) components.

Each handler does its action and returns its outcome (`haagent.core.outcomes`), or
raises; `run` turns what was raised into a `Failed` outcome of the kind a later
decision tells apart, and hands every outcome to the engine's memory, which folds
it in with the core's `after`.  Handlers read the memory, never write it.  The first
failing action stops the sequence; its error is returned so the loop can decide
again at once with the outcome in the next snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from haagent.config import dynamic_config_to_dict
from haagent.config.model import DynamicConfig
from haagent.core import actions as a
from haagent.core.callbacks import WATCHED_ACTIONS, callbacks_after
from haagent.core.outcomes import ActionOutcome, Done, Failed, Failure, PeersAnswered
from haagent.core.snapshot import Decision, Snapshot
from haagent.core.topology import REMOTE
from haagent.dcs.errors import DCSError, DCSUnavailable
from haagent.dcs.model import HistoryEntry, Member, bounded_history
from haagent.dcs.protocol import DCS
from haagent.engine.callbacks import CallbackQueue
from haagent.engine.clock import Clocks
from haagent.engine.configuration import Configuration
from haagent.engine.fatal import AgentStop, bootstrap_stop_message
from haagent.engine.fencing import Fencing
from haagent.engine.hooks import run_hook
from haagent.engine.lease import LeaseKeeper, RenewFailed
from haagent.engine.member import member_data
from haagent.engine.memory import MemoryKeeper
from haagent.engine.ports import PeerClient
from haagent.postgres.errors import (
    BootstrapError,
    PostgresError,
    RewindError,
    StartError,
    StartTimeout,
)
from haagent.postgres.local import PostgresControl
from haagent.postgres.model import PostgresStatus, Upstream

log = logging.getLogger("haagent.engine")


class ActionFailed(Exception):
    def __init__(self, action: a.Action, message: str) -> None:
        super().__init__(f"{type(action).__name__}: {message}")
        self.action = action
        self.message = message


@dataclass(frozen=True)
class Outcome:
    """What running a decision did: the actions completed, the first failure, how long."""

    completed: tuple[a.Action, ...]
    failure: ActionFailed | None = None
    seconds: float = 0.0


def failure_kind(error: Exception) -> Failure:
    """The kind of failure an error from PostgreSQL or etcd is, for the next decision."""
    if isinstance(error, DCSUnavailable):
        return Failure.ETCD_UNREACHABLE
    if isinstance(error, StartError) and not isinstance(error, StartTimeout):
        return Failure.START_REFUSED
    if isinstance(error, RewindError):
        return Failure.REWIND_FAILED
    return Failure.ACTION


def remote_upstream(config: DynamicConfig) -> Upstream | None:
    """The remote primary of a standby cluster (`standby_cluster` host and port), with its
    slot and recovery settings; None when the section names no host."""
    standby = config.standby_cluster
    if standby is None or standby.host is None:
        return None
    return Upstream(
        "standby_cluster",
        standby.host,
        standby.port or 5432,
        remote=True,
        slot=standby.primary_slot_name,
        recovery=standby.recovery,
    )


def standby_leader_sources(config: DynamicConfig) -> list[Upstream]:
    """Where a new standby cluster's first member copies its data directory from: the
    remote primary; none when the section names no host (the archive alone: only the
    methods that restore a backup, `no_leader`, can build it)."""
    remote = remote_upstream(config)
    return [remote] if remote is not None else []


def upstream_of(snapshot: Snapshot, name: str | None) -> Upstream | None:
    """The PostgreSQL address of member `name`, from its `conn_url` (`REMOTE`: the remote
    primary of a standby cluster)."""
    if name is None:
        return None
    if name == REMOTE:
        return remote_upstream(snapshot.config)
    member = snapshot.cluster.members.get(name)
    if member is None:
        return None
    try:
        return Upstream.from_conn_url(name, member.conn_url)
    except ValueError:
        return None


Handler = Callable[[Any, Snapshot], Awaitable[ActionOutcome | None]]


class Executor:
    def __init__(
        self,
        config: Configuration,
        dcs: DCS,
        pg: PostgresControl,
        fencing: Fencing,
        keeper: LeaseKeeper,
        peers: PeerClient,
        memory: MemoryKeeper,
        *,
        clocks: Clocks,
        version: str = "",
        callbacks: CallbackQueue | None = None,
    ) -> None:
        self.configuration = config
        self.dcs = dcs
        self.pg = pg
        self.fencing = fencing
        self.keeper = keeper
        self.peers = peers
        self.memory = memory
        self.clock = clocks.monotonic
        self.wall = clocks.wall
        self.version = version
        settings = config.settings
        self.callbacks = callbacks or CallbackQueue({}, settings.scope, 1.0, clock=clocks.monotonic)
        self._role = memory.value.role
        self._etcd_answered = False
        self._handlers: dict[type, Handler] = {
            a.ObservePeers: self._observe_peers,
            a.RaceInitialize: self._race_initialize,
            a.BootstrapCluster: self._bootstrap,
            a.BootstrapStandbyLeader: self._bootstrap_standby_leader,
            a.SetInitialize: self._set_initialize,
            a.TakeLeaderKey: self._take_leader,
            a.RenewLeaderKey: self._renew_leader,
            a.ReleaseLeaderKey: self._release_leader,
            a.KeepaliveLease: self._keepalive_lease,
            a.ArmFencing: self._arm_fencing,
            a.DisarmFencing: self._disarm_fencing,
            a.StopRenewing: self._stop_renewing,
            a.CreateReplica: self._create_replica,
            a.StartPostgres: self._start,
            a.StopPostgres: self._stop,
            a.RestartPostgres: self._restart,
            a.PrePromote: self._pre_promote,
            a.Promote: self._promote,
            a.Demote: self._demote,
            a.Follow: self._follow,
            a.Checkpoint: self._checkpoint,
            a.AppendHistory: self._append_history,
            a.ClearFailoverKey: self._clear_failover,
            a.EnsureSlots: self._ensure_slots,
            a.CopyLogicalSlots: self._copy_logical_slots,
            a.SetSyncStandbys: self._set_sync_standbys,
            a.WriteSyncKey: self._write_sync_key,
            a.WriteStatusKey: self._write_status,
            a.UpdateMember: self._update_member,
            a.RemoveDataDirectory: self._remove_data_directory,
        }

    @property
    def handled_types(self) -> frozenset[type]:
        return frozenset(self._handlers)

    @property
    def config(self) -> DynamicConfig:
        return self.configuration.dynamic

    async def run(self, decision: Decision, snapshot: Snapshot) -> Outcome:
        started = self.clock()
        done: list[a.Action] = []
        self._role = decision.role
        for action in decision.actions:
            self.keeper.alive()
            before = await self._before_callbacks(action)
            outcome = await self._run(action, snapshot)
            self.memory.record(action, outcome)
            if isinstance(outcome, Failed):
                failure = ActionFailed(action, outcome.why)
                return Outcome(tuple(done), failure, self.clock() - started)
            if before is not None:
                events = callbacks_after(action, before, decision.role, self.callbacks.last_role)
                self.callbacks.fire_all(events, str(decision.reason.code))
            done.append(action)
        return Outcome(tuple(done), None, self.clock() - started)

    async def _before_callbacks(self, action: a.Action) -> PostgresStatus | None:
        """PostgreSQL just before an action that may fire callbacks (only when some are
        configured): what it was decides which ones (`core.callbacks`)."""
        if not self.callbacks.enabled or not isinstance(action, WATCHED_ACTIONS):
            return None
        return await self.pg.status()

    async def _run(self, action: a.Action, s: Snapshot) -> ActionOutcome:
        """One action's outcome; what it raised becomes a `Failed` of its kind."""
        self._etcd_answered = False
        try:
            outcome = await self._handlers[type(action)](action, s)
        except ActionFailed as e:
            return Failed(e.message, etcd_answered=self._etcd_answered)
        except DCSUnavailable as e:
            return Failed(str(e), Failure.ETCD_UNREACHABLE, etcd_answered=self._etcd_answered)
        except AgentStop as e:
            self.memory.record(action, Failed(str(e), etcd_answered=self._etcd_answered))
            raise
        except (DCSError, PostgresError, OSError, RuntimeError, ValueError, TimeoutError) as e:
            log.warning("%s failed: %s", type(action).__name__, e)
            return Failed(str(e), failure_kind(e), etcd_answered=self._etcd_answered)
        return outcome if outcome is not None else Done(etcd_answered=self._etcd_answered)

    # --- etcd

    def _etcd_ok(self) -> None:
        """etcd answered this action (its outcome says so)."""
        self._etcd_answered = True

    async def _bounded(self, call: Awaitable[Any], what: str) -> Any:
        try:
            result = await asyncio.wait_for(call, self.config.retry_timeout)
        except TimeoutError as e:
            raise DCSUnavailable(f"{what} took longer than retry_timeout") from e
        self._etcd_ok()
        return result

    # --- handlers

    async def _observe_peers(self, action: a.ObservePeers, s: Snapshot) -> PeersAnswered:
        """Ask every member we know of: those in the view, those seen lately whose member
        key is gone, and those the `failsafe` key lists (a leader cut off from etcd may run
        on their confirmations): any of them may still run a primary."""
        others = {n: m for n, (m, _) in self.memory.value.known_members.items()}
        for name, url in (s.cluster.failsafe or {}).items():
            others.setdefault(name, Member(name=name, conn_url="", api_url=url))
        others.update(s.cluster.members)
        others.pop(s.name, None)
        timeout = min(2.0, max(0.5, self.config.retry_timeout / 2))
        return PeersAnswered(await self.peers.positions(list(others.values()), timeout))

    async def _race_initialize(self, action: a.RaceInitialize, s: Snapshot) -> None:
        won = await self._bounded(self.dcs.race_initialize(action.value), "initialize race")
        if not won:
            raise ActionFailed(action, "another node won the initialize race")

    async def _bootstrap(self, action: a.BootstrapCluster, s: Snapshot) -> None:
        try:
            await self.pg.bootstrap()
        except Exception as e:
            try:
                await self._bounded(self.dcs.cancel_initialize(), "cancel initialize")
            except DCSError as cancel_error:
                log.error("could not remove the initialize key: %s", cancel_error)
            if isinstance(e, BootstrapError):  # initdb or post_bootstrap: a retry fails alike
                raise AgentStop(bootstrap_stop_message(e)) from e
            raise ActionFailed(action, f"bootstrap failed: {e}") from e

    async def _bootstrap_standby_leader(
        self, action: a.BootstrapStandbyLeader, s: Snapshot
    ) -> None:
        await self.pg.create_replica(standby_leader_sources(s.config))

    async def _set_initialize(self, action: a.SetInitialize, s: Snapshot) -> None:
        status = await self.pg.status()
        if status.system_identifier is None:
            raise ActionFailed(action, "PostgreSQL did not report its system identifier")
        await self._bounded(self.dcs.set_initialize(status.system_identifier), "set initialize")
        if s.cluster.config is None:
            # Seed the cluster-wide config from bootstrap.dcs, as Patroni does.
            dynamic = self.configuration.settings.bootstrap.dcs
            seed = dict(dynamic.raw) if dynamic.raw else dynamic_config_to_dict(dynamic)
            await self._bounded(self.dcs.write_config(seed, expected_revision=0), "config key")

    async def _take_leader(self, action: a.TakeLeaderKey, s: Snapshot) -> None:
        if not await self.keeper.take():
            raise ActionFailed(action, "another member holds the leader key")
        self._etcd_ok()

    async def _renew_leader(self, action: a.RenewLeaderKey, s: Snapshot) -> ActionOutcome:
        try:
            await self.keeper.renew()
        except RenewFailed as e:
            # Lost: etcd said the key is not ours.  Otherwise etcd did not answer in time.
            return Failed(str(e), Failure.ACTION if e.lost else Failure.ETCD_UNREACHABLE)
        return Done(etcd_answered=True)

    async def _release_leader(self, action: a.ReleaseLeaderKey, s: Snapshot) -> None:
        await self.keeper.release()
        self._etcd_ok()

    async def _stop_renewing(self, action: a.StopRenewing, s: Snapshot) -> None:
        self.keeper.stop()

    async def _keepalive_lease(self, action: a.KeepaliveLease, s: Snapshot) -> None:
        await self._bounded(self.dcs.keepalive(), "lease keepalive")

    async def _arm_fencing(self, action: a.ArmFencing, s: Snapshot) -> None:
        expires = self.keeper.expires
        if expires is None:
            raise ActionFailed(action, "no lease to fence by: the leader key is not held")
        if expires - self.fencing.margin <= self.clock():
            raise ActionFailed(action, "the lease is about to expire: renew the key first")
        if not self.fencing.arm(expires):
            raise ActionFailed(action, f"watchdog unusable: {self.fencing.describe()}")

    async def _disarm_if_stopped(self) -> None:
        """PostgreSQL is about to start as a replica: an armed fence (whose lease may have
        run out) must not stop it.  Only when PostgreSQL is confirmed not running."""
        if self.fencing.armed and not (await self.pg.status()).running:
            self.fencing.disarm()

    async def _disarm_fencing(self, action: a.DisarmFencing, s: Snapshot) -> None:
        if not self.config.pause:
            pg = await self.pg.status()
            if pg.running and not pg.in_recovery:
                # The contract: fencing stays armed while PostgreSQL may be a primary.
                raise ActionFailed(action, "PostgreSQL still runs as a primary: fencing stays")
        self.fencing.disarm()

    def _upstream(
        self, s: Snapshot, name: str | None, action: a.Action, rewind_from: str | None = None
    ) -> Upstream | None:
        """Member `name`'s address; with `rewind_from` (streaming from a standby), the
        leader's too, to check timelines against and rewind from."""
        upstream = upstream_of(s, name)
        if name == REMOTE and upstream is None:
            if s.config.standby_cluster is not None:
                return None  # the archive alone: a standby of no server (`conf.py`)
            raise ActionFailed(action, "no standby_cluster section: no remote to follow")
        if name is not None and upstream is None:
            raise ActionFailed(action, f"member {name} has no member key with a conn_url")
        if upstream is not None and rewind_from is not None:
            source = self._upstream(s, rewind_from, action)
            upstream = dataclasses.replace(
                upstream, timeline_source=source, checks_timeline=source is not None
            )
        return upstream

    async def _create_replica(self, action: a.CreateReplica, s: Snapshot) -> None:
        upstream = self._upstream(s, action.source, action)
        await self.pg.create_replica(
            [upstream] if upstream is not None else [], basebackup_only=action.basebackup_only
        )

    async def _start(self, action: a.StartPostgres, s: Snapshot) -> None:
        upstream = self._upstream(s, action.leader, action, action.rewind_from)
        if action.role == "replica":
            await self._disarm_if_stopped()
        await self.pg.start(action.role, upstream)

    def _stop_timeout(self, primary: bool = False) -> float | None:
        """How long a fast shutdown may take before the immediate one: while we hold a lease
        that the keeper renews, the usual pg_ctl_timeout (in synchronous mode, a primary's
        `primary_stop_timeout` when set, as in Patroni); otherwise until the lease can
        expire."""
        config = self.config
        bound: float | None = None
        if primary and config.synchronous_mode and config.primary_stop_timeout > 0:
            bound = float(config.primary_stop_timeout)
        expires = self.keeper.expires
        if self.keeper.keeping or expires is None:
            return bound
        until_expiry = max(1.0, expires - self.clock())
        return until_expiry if bound is None else min(bound, until_expiry)

    async def _before_stop(self, what: str) -> None:
        """`postgresql.before_stop`, when set and PostgreSQL runs (bounded; its exit status
        does not stop the stop)."""
        command = self.configuration.settings.postgresql.before_stop
        if command and (await self.pg.status()).running:
            await run_hook(f"postgresql.before_stop ({what})", command, self._hook_timeout)

    @property
    def _hook_timeout(self) -> float:
        return float(self.configuration.settings.postgresql.callback_timeout)

    async def _stop(self, action: a.StopPostgres, s: Snapshot) -> None:
        await self._before_stop(f"stop {action.mode}")
        primary = s.is_running_primary
        await self.pg.stop(action.mode, self._stop_timeout(primary))

    async def _restart(self, action: a.RestartPostgres, s: Snapshot) -> None:
        await self._before_stop("restart")
        upstream = self._upstream(s, action.leader, action, action.rewind_from)
        await self.pg.restart(action.role, upstream)

    async def _pre_promote(self, action: a.PrePromote, s: Snapshot) -> None:
        command = self.configuration.settings.postgresql.pre_promote
        if not command:
            return
        problem = await run_hook("postgresql.pre_promote", command, self._hook_timeout)
        if problem is not None:
            raise ActionFailed(action, f"pre_promote {problem}")

    async def _promote(self, action: a.Promote, s: Snapshot) -> None:
        await self.pg.promote()

    async def _demote(self, action: a.Demote, s: Snapshot) -> None:
        upstream = self._upstream(s, action.leader, action, action.rewind_from)
        if self.configuration.settings.postgresql.before_stop:
            log.info("postgresql.before_stop skipped: this demotion stops writes at once")
        await self.pg.stop(action.mode, self._stop_timeout(s.is_running_primary))
        await self._disarm_if_stopped()  # stopped: not a primary, and must start as a replica
        await self.pg.demote(action.mode, upstream, self._stop_timeout())

    async def _follow(self, action: a.Follow, s: Snapshot) -> None:
        # None: no streaming (a `nostream` member replays the archive only).
        upstream = self._upstream(s, action.leader, action, action.rewind_from)
        if action.recheck:
            await self.pg.follow(upstream, recheck=True)
        else:
            await self.pg.follow(upstream)

    async def _checkpoint(self, action: a.Checkpoint, s: Snapshot) -> None:
        # Only to make the shutdown after it short: a CHECKPOINT that fails or takes too
        # long (a stalled checkpointer) must not keep the primary from stopping.
        try:
            await self.pg.checkpoint()
        except (PostgresError, OSError, RuntimeError, ValueError, TimeoutError) as e:
            log.warning("CHECKPOINT before stopping failed, stopping anyway: %s", e)

    async def _append_history(self, action: a.AppendHistory, s: Snapshot) -> None:
        switch = await self.pg.last_timeline_switch()
        if switch is None or any(h.timeline == switch.timeline for h in s.cluster.history):
            return
        entry = HistoryEntry(
            timeline=switch.timeline,
            lsn=switch.lsn,
            reason=switch.reason or action.reason,
            timestamp=self.wall().isoformat(),
            new_leader=s.name,
        )
        rows = bounded_history((*s.cluster.history, entry), s.config.max_timelines_history)
        await self._bounded(self.dcs.write_history(rows), "history")

    async def _clear_failover(self, action: a.ClearFailoverKey, s: Snapshot) -> None:
        await self._bounded(self.dcs.clear_failover(), "clear failover key")

    async def _ensure_slots(self, action: a.EnsureSlots, s: Snapshot) -> None:
        await self.pg.change_slots(action.changes)

    async def _copy_logical_slots(self, action: a.CopyLogicalSlots, s: Snapshot) -> None:
        upstream = self._upstream(s, action.leader, action)
        assert upstream is not None
        await self.pg.copy_logical_slots(upstream, action.slots)

    async def _set_sync_standbys(self, action: a.SetSyncStandbys, s: Snapshot) -> None:
        # The primary's position when PostgreSQL began to wait for these standbys is taken at
        # the next observe (walsenders read the new value a moment after the reload).
        await self.pg.set_synchronous_standby_names(action.value)

    async def _write_sync_key(self, action: a.WriteSyncKey, s: Snapshot) -> None:
        written = await self._bounded(
            self.dcs.write_sync(
                action.leader,
                action.members,
                expected_revision=action.expected_revision,
                quorum=action.quorum,
            ),
            "sync key",
        )
        if not written:
            raise ActionFailed(action, "the sync key changed under us (compare-and-swap lost)")

    async def _write_status(self, action: a.WriteStatusKey, s: Snapshot) -> None:
        if s.postgres.write_lsn is None:
            return
        write = self.dcs.write_status(
            s.postgres.write_lsn,
            dict(action.slots),
            action.retain,
            s.postgres.timeline,
            action.lost,
        )
        await self._bounded(write, "status key")
        if self.config.failsafe_mode:
            # The members the leader will ask to confirm it while etcd is away.
            members = {n: m.api_url for n, m in s.cluster.members.items()}
            if dict(s.cluster.failsafe or {}) != members:
                await self._bounded(self.dcs.write_failsafe(members), "failsafe key")

    async def _update_member(self, action: a.UpdateMember, s: Snapshot) -> None:
        data = member_data(
            self.configuration.settings,
            await self.pg.status(),
            self._role,
            paused=self.config.pause,
            version=self.version,
        )
        await self._bounded(self.dcs.touch_member(data), "member key")

    async def _remove_data_directory(self, action: a.RemoveDataDirectory, s: Snapshot) -> None:
        await self.pg.remove_data_directory(action.reason)
