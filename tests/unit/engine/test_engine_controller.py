"""The REST requests as the agent's controller answers them (Patroni's codes), on a stub loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from haagent.dcs.memory import MemoryDCS, MemoryStore
from haagent.engine.controller import RELOAD_REFUSED, LoopController
from haagent.engine.loop import HaLoop
from haagent.engine.requests import ReloadRequest, RestartRequest
from haagent.engine.status import PublishedStatus
from haagent_lab.fake_api import primary_status, replica_status


class StubLoop:
    """What the controller uses of the HA loop: its status, state, wake-ups and config."""

    def __init__(self, status: PublishedStatus) -> None:
        self.current = status
        self.state = SimpleNamespace(manual=None)
        self.wake = asyncio.Event()
        self.cycle_done = asyncio.Event()
        self.config = status.config
        self.manual_requests: list[Any] = []

    def status(self) -> PublishedStatus:
        return self.current


def controller(
    status: PublishedStatus, reload: str = "reloaded"
) -> tuple[LoopController, StubLoop]:
    loop = StubLoop(status)
    dcs = MemoryDCS(MemoryStore(), status.name)
    return LoopController(cast(HaLoop, loop), dcs, reload=lambda: reload), loop


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
