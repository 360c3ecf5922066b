"""Typed requests that the REST API and the CLI put on the HA loop's queue.

Each request is answered with a `RequestResult`: an HTTP-style status code and
a message for the person who asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from haagent.dcs.events import EventsRead
from haagent.engine.status import PublishedStatus


@dataclass(frozen=True)
class SwitchoverRequest:
    leader: str
    candidate: str | None = None
    scheduled_at: datetime | None = None


@dataclass(frozen=True)
class FailoverRequest:
    candidate: str
    leader: str | None = None


@dataclass(frozen=True)
class CancelSwitchoverRequest:
    pass


@dataclass(frozen=True)
class RestartRequest:
    schedule: datetime | None = None
    role: str | None = None
    postgres_version: str | None = None
    timeout: float | None = None
    restart_pending: bool = False


@dataclass(frozen=True)
class CancelRestartRequest:
    pass


@dataclass(frozen=True)
class ReinitializeRequest:
    force: bool = False
    from_leader: bool = False


@dataclass(frozen=True)
class ReloadRequest:
    pass


@dataclass(frozen=True)
class FailsafeRequest:
    """A leader's `POST /failsafe`: it tells members it still runs while etcd is away."""

    leader: str
    body: Mapping[str, Any] = field(default_factory=dict)


Request = (
    SwitchoverRequest
    | FailoverRequest
    | CancelSwitchoverRequest
    | RestartRequest
    | CancelRestartRequest
    | ReinitializeRequest
    | ReloadRequest
    | FailsafeRequest
)


@dataclass(frozen=True)
class RequestResult:
    status: int
    message: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ConfigWriteResult:
    status: int  # 200 written, 409 lost a compare-and-swap race, 503 DCS unavailable
    message: str
    config: Mapping[str, Any] | None = None


class Controller(Protocol):
    """What the REST API needs from the agent."""

    def status(self) -> PublishedStatus:
        """The last published status: no I/O."""
        ...

    async def submit(self, request: Request) -> RequestResult:
        """Hand a request to the HA loop and wait for its outcome."""
        ...

    async def patch_config(self, patch: Mapping[str, Any]) -> ConfigWriteResult:
        """JSON merge-patch of the DCS `config` key (null deletes), written with CAS."""
        ...

    async def replace_config(self, config: Mapping[str, Any]) -> ConfigWriteResult:
        """Replace the DCS `config` key, written with CAS."""
        ...

    async def events(self, *, member: str | None, since: float | None) -> EventsRead:
        """The cluster's event history read from etcd; raises DCSError when it cannot be."""
        ...
