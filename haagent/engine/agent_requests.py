"""`AgentRequests`: the agent's side of its REST API (the `Controller` the API is handed).

It publishes the HA loop's status and turns each request into loop work.
Switchover and failover become a write of the `failover` key (the HA loops of
the leader and the candidate act on it) followed by a wait for the outcome;
restart and reinitialize become a manual request for this node's loop.  Waits
end on events (a new cluster view, a completed HA cycle), not on a timer; the
loop is reached through its methods only (`ask`, `next_cycle`, `wake_up`...).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from haagent.config import ConfigError, parse_dynamic_config
from haagent.config.dynamic import merge_patch
from haagent.core.fitness import unfit_reason
from haagent.core.snapshot import ManualRequest
from haagent.dcs.errors import DCSError
from haagent.dcs.events import EventsRead
from haagent.dcs.protocol import DCS
from haagent.engine.clock import Clocks
from haagent.engine.loop import HaLoop
from haagent.engine.requests import (
    CancelRestartRequest,
    CancelSwitchoverRequest,
    ConfigWriteResult,
    FailoverRequest,
    FailsafeRequest,
    ReinitializeRequest,
    ReloadRequest,
    Request,
    RequestResult,
    RestartRequest,
    SwitchoverRequest,
)
from haagent.engine.status import PublishedStatus

log = logging.getLogger("haagent.engine")
RELOAD_REFUSED = "reload refused"


class AgentRequests:
    def __init__(
        self,
        loop: HaLoop,
        dcs: DCS,
        *,
        clocks: Clocks,
        reload: Callable[[], str] | None = None,
    ) -> None:
        self.loop = loop
        self.dcs = dcs
        self._reload = reload
        self._clock = clocks.monotonic
        self._wall = clocks.wall
        self._scheduled_restart: asyncio.Task[None] | None = None

    def status(self) -> PublishedStatus:
        return self.loop.status()

    async def submit(self, request: Request) -> RequestResult:
        try:
            return await self._submit(request)
        except DCSError as e:
            return RequestResult(503, f"etcd cannot be reached: {e}")

    async def _submit(self, request: Request) -> RequestResult:
        if isinstance(request, SwitchoverRequest):
            return await self._switchover(request.leader, request.candidate, request.scheduled_at)
        if isinstance(request, FailoverRequest):
            return await self._failover(request)
        if isinstance(request, CancelSwitchoverRequest):
            return await self._cancel_switchover()
        if isinstance(request, RestartRequest):
            return await self._restart(request)
        if isinstance(request, CancelRestartRequest):
            return self._cancel_restart()
        if isinstance(request, ReinitializeRequest):
            return await self._reinitialize(request)
        if isinstance(request, ReloadRequest):
            return self._reload_config()
        return self._failsafe(request)

    def _reload_config(self) -> RequestResult:
        """Re-read the config file; 202 as Patroni answers (it reloads on its next cycle),
        503 with the reason when the file is refused and the running config is kept."""
        message = self._reload() if self._reload else "nothing to reload"
        self.loop.wake_up()
        if message.startswith(RELOAD_REFUSED):
            return RequestResult(503, message)
        return RequestResult(202, message)

    # --- switchover / failover

    async def _switchover(
        self, leader: str, candidate: str | None, scheduled_at: datetime | None
    ) -> RequestResult:
        view = self.dcs.view()
        config = self.loop.config
        current = view.leader_name
        if current is None:
            return RequestResult(412, "the cluster has no leader: use failover instead")
        if leader != current:
            return RequestResult(412, f"leader name does not match: the leader is {current}")
        if config.pause and candidate is None:
            return RequestResult(400, "switchover in maintenance mode needs a candidate")
        if config.pause and scheduled_at is not None:
            return RequestResult(400, "cannot schedule a switchover in maintenance mode")
        if candidate is not None:
            member = view.members.get(candidate)
            if member is None:
                return RequestResult(412, f"candidate {candidate} is not a member of the cluster")
            why = unfit_reason(view, config, member)
            if why is not None:
                return RequestResult(412, f"candidate not fit: {why}")
        elif not any(
            unfit_reason(view, config, m) is None for n, m in view.members.items() if n != leader
        ):
            return RequestResult(412, "no member is fit to take over (see `haactl explain`)")
        written = await self.dcs.write_failover(
            leader=leader, candidate=candidate, scheduled_at=scheduled_at
        )
        if not written:
            return RequestResult(409, "another switchover request was written at the same time")
        if scheduled_at is not None and scheduled_at > self._wall():
            return RequestResult(202, f"switchover scheduled at {scheduled_at.isoformat()}")
        return await self._await_new_leader(leader, candidate, "switched over")

    async def _failover(self, request: FailoverRequest) -> RequestResult:
        view = self.dcs.view()
        candidate = request.candidate
        if candidate not in view.members:
            return RequestResult(412, f"candidate {candidate} is not a member of the cluster")
        current = view.leader_name
        if current == candidate:
            return RequestResult(412, f"{candidate} is already the leader")
        if current is not None:
            return await self._switchover(current, candidate, None)
        written = await self.dcs.write_failover(leader=None, candidate=candidate, scheduled_at=None)
        if not written:
            return RequestResult(409, "another failover request was written at the same time")
        return await self._await_new_leader(None, candidate, "failed over")

    async def _await_new_leader(
        self, old: str | None, candidate: str | None, verb: str
    ) -> RequestResult:
        wait = max(30.0, 2.0 * self.loop.config.ttl)
        deadline = self._clock() + wait
        while (left := deadline - self._clock()) > 0:
            view = self.dcs.view()
            leader = view.leader_name
            if leader is not None and leader != old and (candidate in (None, leader)):
                return RequestResult(200, f'Successfully {verb} to "{leader}"')
            if view.failover is None and leader == old and leader is not None:
                status = self.loop.status()
                return RequestResult(
                    503, f"{verb.split()[0]} failed: {status.reason_text or 'request cancelled'}"
                )
            await self._next_change(left)
        return RequestResult(503, f"no new leader within {wait:.0f}s: check `haactl list`")

    async def _next_change(self, timeout: float) -> None:
        """Until the cluster view changes or the HA loop completes a cycle (or `timeout`)."""
        waiters = [
            asyncio.ensure_future(self.dcs.next_view()),
            asyncio.ensure_future(self.loop.next_cycle()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _cancel_switchover(self) -> RequestResult:
        failover = self.dcs.view().failover
        if failover is None or failover.scheduled_at is None:
            return RequestResult(404, "no switchover is scheduled")
        await self.dcs.clear_failover()
        return RequestResult(200, "scheduled switchover deleted")

    # --- restart / reinitialize

    def _restart_problem(self, request: RestartRequest) -> str | None:
        status = self.loop.status()
        if request.role not in (None, "any") and request.role != status.role:
            return (
                f"restart conditions are not satisfied: role is {status.role}, not {request.role}"
            )
        if request.restart_pending and not status.pending_restart:
            return "restart conditions are not satisfied: no restart is pending"
        if request.postgres_version and status.postgres.server_version is not None:
            parts = [int(p) for p in request.postgres_version.split(".") if p.isdigit()]
            wanted = parts[0] * 10000 + (parts[1] if len(parts) > 1 else 0)
            if status.postgres.server_version >= wanted:
                return "restart conditions are not satisfied: PostgreSQL is not older"
        return None

    async def _restart(self, request: RestartRequest) -> RequestResult:
        """As Patroni: the conditions (role, version, pending restart) of a scheduled restart
        are checked when it is due (202 now); an immediate one that does not meet them
        answers 503."""
        if request.schedule is not None and request.schedule > self._wall():
            if self._scheduled_restart is not None and not self._scheduled_restart.done():
                return RequestResult(409, "a restart is already scheduled: DELETE /restart first")
            delay = (request.schedule - self._wall()).total_seconds()
            self._scheduled_restart = asyncio.create_task(self._restart_later(delay, request))
            return RequestResult(202, f"restart scheduled at {request.schedule.isoformat()}")
        problem = self._restart_problem(request)
        if problem is not None:
            return RequestResult(503, problem)
        return await self._manual(ManualRequest("restart"), request.timeout or 120.0, "restarted")

    async def _restart_later(self, delay: float, request: RestartRequest) -> None:
        await asyncio.sleep(delay)
        problem = self._restart_problem(request)
        if problem is not None:
            log.info("scheduled restart not done: %s", problem)
            return
        result = await self._manual(ManualRequest("restart"), request.timeout or 120.0, "restarted")
        log.info("scheduled restart: %s", result.message)

    def _cancel_restart(self) -> RequestResult:
        task = self._scheduled_restart
        if task is None or task.done():
            return RequestResult(404, "no restart is scheduled")
        task.cancel()
        return RequestResult(200, "scheduled restart deleted")

    async def _reinitialize(self, request: ReinitializeRequest) -> RequestResult:
        status = self.loop.status()
        if status.holds_leader_key or self.dcs.view().leader_name == status.name:
            return RequestResult(503, "this node is the leader: it cannot be reinitialized")
        if self.dcs.view().leader_name is None:
            return RequestResult(503, "the cluster has no leader to copy the data from")
        manual = ManualRequest("reinitialize", force=request.force, from_leader=request.from_leader)
        return await self._manual(manual, 3600.0, "reinitialized")

    async def _manual(self, manual: ManualRequest, timeout: float, verb: str) -> RequestResult:
        """Hand the request to the loop; answer once a cycle that carried it out completed
        (and published PostgreSQL's state after it)."""
        busy = self.loop.ask(manual)
        if busy is not None:
            return RequestResult(503, f"a {busy.kind} is already in progress")
        deadline = self._clock() + timeout
        while (left := deadline - self._clock()) > 0:
            if not await self.loop.next_cycle(left):
                break
            if self.loop.manual_request is None:
                status = self.loop.status()
                if status.postgres.running:
                    return RequestResult(200, f"{verb} successfully")
                return RequestResult(503, f"{verb.rstrip('ed')} failed: {status.reason_text}")
        return RequestResult(503, f"not {verb} within {timeout:.0f}s: {self.status().reason_text}")

    # --- failsafe

    def _failsafe(self, request: FailsafeRequest) -> RequestResult:
        view = self.dcs.view()
        known = view.leader_name
        if known is not None and known != request.leader:
            return RequestResult(409, f"{known} is the leader known here, not {request.leader}")
        if self.loop.status().is_primary:
            return RequestResult(409, "this node runs as the primary itself")
        self.loop.failsafe_leader_heard()
        return RequestResult(200, "Accepted")

    # --- dynamic config

    async def _write_config(self, new: Mapping[str, Any]) -> ConfigWriteResult:
        try:
            parse_dynamic_config(new)
        except ConfigError as e:
            return ConfigWriteResult(400, str(e))
        view = self.dcs.view()
        revision = view.config_revision if view.config is not None else 0
        try:
            written = await self.dcs.write_config(dict(new), expected_revision=revision)
        except DCSError as e:
            return ConfigWriteResult(503, f"etcd cannot be reached: {e}")
        if not written:
            return ConfigWriteResult(409, "the config changed meanwhile: read it and try again")
        log.info("dynamic config changed over the REST API: %s", json.dumps(new, sort_keys=True))
        self.loop.wake_up()
        return ConfigWriteResult(200, "config updated", dict(new))

    async def patch_config(self, patch: Mapping[str, Any]) -> ConfigWriteResult:
        view = self.dcs.view()
        current = dict(view.config.raw) if view.config is not None else {}
        return await self._write_config(merge_patch(current, patch))

    async def replace_config(self, config: Mapping[str, Any]) -> ConfigWriteResult:
        return await self._write_config(config)

    async def events(self, *, member: str | None, since: float | None) -> EventsRead:
        return await self.dcs.read_events(member=member, since=since)
