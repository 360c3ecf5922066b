"""The REST requests as the agent's controller answers them (Patroni's codes), on a stub loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from haagent.core.snapshot import ManualRequest
from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.agent_requests import RELOAD_REFUSED, AgentRequests
from haagent.engine.clock import system_clocks
from haagent.engine.loop import HaLoop
from haagent.engine.requests import ReloadRequest, RestartRequest
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import primary_status, replica_status


class StubLoop:
    """What the controller uses of the HA loop (its methods): its status, requests, wake-ups
    and config; `state.manual` records the request handed over."""

    def __init__(self, status: PublishedStatus) -> None:
        self.current = status
        self.state = SimpleNamespace(manual=None)
        self.wake = asyncio.Event()
        self.config = status.config
        self.manual_requests: list[Any] = []

    def status(self) -> PublishedStatus:
        return self.current

    def wake_up(self) -> None:
        self.wake.set()

    def ask(self, manual: ManualRequest) -> ManualRequest | None:
        busy: ManualRequest | None = self.state.manual
        if busy is None:
            self.state.manual = manual
            self.wake_up()
        return busy

    @property
    def manual_request(self) -> ManualRequest | None:
        manual: ManualRequest | None = self.state.manual
        return manual

    async def next_cycle(self, timeout: float | None = None) -> bool:
        await asyncio.sleep(timeout if timeout is not None else 3600)  # no cycle ever runs
        return False


def controller(status: PublishedStatus, reload: str = "reloaded") -> tuple[AgentRequests, StubLoop]:
    loop = StubLoop(status)
    dcs = MemoryDCS(MemoryStore(), status.name)
    ctl = AgentRequests(cast(HaLoop, loop), dcs, clocks=system_clocks(), reload=lambda: reload)
    return ctl, loop


def test_reload_answers_202_like_patroni() -> None:
    ctl, loop = controller(replica_status())
    result = asyncio.run(ctl.submit(ReloadRequest()))
    assert (result.status, result.message) == (202, "reloaded")
    assert loop.wake.is_set()
    refused, _ = controller(replica_status(), reload=f"{RELOAD_REFUSED}: bad ttl")
    result = asyncio.run(refused.submit(ReloadRequest()))
    assert result.status == 503 and "bad ttl" in result.message


async def test_a_scheduled_restart_checks_its_role_when_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctl, loop = controller(replica_status())
    soon = datetime.now(UTC) + timedelta(seconds=0.2)
    result = await ctl.submit(RestartRequest(schedule=soon, role="primary"))
    assert result.status == 202, result.message
    with caplog.at_level(logging.INFO, logger="haagent.engine"):
        await asyncio.sleep(0.5)
    assert loop.state.manual is None  # not restarted: this node is a replica
    assert [r.getMessage() for r in caplog.records] == [
        "scheduled restart not done: restart conditions are not satisfied: "
        "role is replica, not primary"
    ]


async def test_a_scheduled_restart_whose_role_matches_runs_when_due() -> None:
    ctl, loop = controller(primary_status())
    soon = datetime.now(UTC) + timedelta(seconds=0.1)
    assert (await ctl.submit(RestartRequest(schedule=soon, role="primary"))).status == 202
    await asyncio.wait_for(loop.wake.wait(), 5)  # the restart handed to the loop when due
    assert loop.state.manual is not None and loop.state.manual.kind == "restart"
    loop.state.manual = None  # the loop did it


async def test_an_immediate_restart_that_does_not_match_answers_503() -> None:
    ctl, loop = controller(replica_status())
    result = await ctl.submit(RestartRequest(role="primary"))
    assert result.status == 503
    assert result.message == ("restart conditions are not satisfied: role is replica, not primary")
    result = await ctl.submit(RestartRequest(restart_pending=True))
    assert result.status == 503 and "no restart is pending" in result.message
    assert loop.state.manual is None
