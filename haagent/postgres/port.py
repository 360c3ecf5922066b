"""`Postgres` as the HA loop's `PostgresControl` port (haagent.engine.ports).

The loop calls without timeouts; this adapter
supplies the timeouts (from `postgresql.pg_ctl_timeout` for start/stop) and
maps each call onto `Postgres`:

- `start("primary")` never ends recovery on an old timeline: a standby on disk
  is started as one and promoted (`Postgres.start_as_primary`);
- `start("replica", leader)` / `follow` / `demote` rewind first when the
  timeline diverged (RewindError / RewindImpossible otherwise);
- `ensure_slots(members)` makes the primary's physical slots exactly one per
  member plus the permanent ones of the dynamic `slots`, dropping others unless
  `ignore_slots` names them (as Patroni does); the loop handles the retention;
- `set_dynamic_config` rewrites and reloads the config in the background when
  the cluster-wide parameters change;
- a failed rewind re-clones from the upstream only when the matching flag is on
  (`postgresql.remove_data_directory_on_rewind_failure`, or
  `remove_data_directory_on_diverged_timelines` when pg_rewind cannot be used);
  otherwise the error goes up and the data directory is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from haagent.config.model import DynamicConfig, Settings
from haagent.engine.ports import PostgresControl, TimelineSwitch
from haagent.postgres import slots
from haagent.postgres.control import log
from haagent.postgres.errors import PostgresError, RewindError, RewindImpossible
from haagent.postgres.manager import Postgres
from haagent.postgres.model import PostgresStatus, Upstream

Role = Literal["primary", "replica"]
Mode = Literal["smart", "fast", "immediate"]


class PostgresPort:
    def __init__(self, pg: Postgres, name: str, status_timeout: float = 2.0) -> None:
        self.pg = pg
        self.name = name
        self.status_timeout = status_timeout
        self.postmaster_died: asyncio.Event = pg.postmaster_died
        self._dynamic: DynamicConfig | None = None  # the last one the loop handed in
        self._apply: asyncio.Task[None] | None = None

    def set_dynamic_config(self, config: DynamicConfig) -> None:
        before, self._dynamic = self._dynamic, config
        self.pg.set_dynamic_config(config)
        if before is None or before.postgresql != config.postgresql:
            self._apply = asyncio.get_running_loop().create_task(self._apply_config())

    async def _apply_config(self) -> None:
        try:
            pending = await self.pg.apply_config()
        except PostgresError as exc:
            log.warning("applying the new dynamic config failed: %s", exc)
        else:
            if pending:
                log.info("the new dynamic config needs a restart to take full effect")

    async def status(self) -> PostgresStatus:
        return await self.pg.status(self.status_timeout)

    async def bootstrap(self) -> None:
        await self.pg.bootstrap()

    async def create_replica(self, source: Upstream) -> None:
        upstream = source
        assert upstream is not None
        await self.pg.create_replica([upstream])

    async def _reinit_policy(
        self, upstream: Upstream | None, step: Callable[[], Awaitable[object]]
    ) -> None:
        try:
            await step()
        except RewindError as exc:
            settings = self.pg.settings
            flag = (
                settings.remove_data_directory_on_diverged_timelines
                if isinstance(exc, RewindImpossible)
                else settings.remove_data_directory_on_rewind_failure
            )
            source = upstream
            if not flag or source is None:
                raise
            log.warning("re-cloning from %s as configured, after: %s", source, exc)
            await self.pg.reinit([source])

    async def start(self, role: Role, upstream: Upstream | None) -> None:
        if role == "primary":
            await self.pg.start_as_primary()
        else:
            await self._reinit_policy(upstream, lambda: self.pg.follow(upstream))

    async def stop(self, mode: Mode, timeout: float | None = None) -> None:
        await self.pg.stop(mode, timeout)

    async def restart(self, role: Role, upstream: Upstream | None) -> None:
        await self.pg.stop("fast")
        await self.start(role, upstream)

    async def promote(self) -> None:
        await self.pg.promote()

    async def demote(
        self, mode: Mode, upstream: Upstream | None, timeout: float | None = None
    ) -> None:
        await self._reinit_policy(upstream, lambda: self.pg.demote(upstream, mode, timeout))

    async def follow(self, upstream: Upstream) -> None:
        await self._reinit_policy(upstream, lambda: self.pg.follow(upstream))

    async def checkpoint(self) -> None:
        await self.pg.checkpoint()

    async def ensure_slots(self, members: Sequence[str]) -> None:
        config = self.pg.dynamic
        if not config.postgresql.use_slots:
            return
        status = await self.status()
        if not status.accepting or status.in_recovery:
            return
        existing = await self.pg.list_slots()
        permanent = slots.permanent_physical_slots(config.slots)
        create, drop = slots.plan_slots(
            existing, members, self.name, permanent, config.ignore_slots
        )
        if create:
            await self.pg.ensure_slots(create)
        if drop:
            await self.pg.drop_slots(drop)

    async def set_synchronous_standby_names(self, value: str) -> None:
        await self.pg.set_synchronous_standby_names_value(value)

    async def last_timeline_switch(self) -> TimelineSwitch | None:
        switch = await self.pg.last_timeline_switch()
        return None if switch is None else TimelineSwitch(*switch)

    async def slot_positions(self) -> Mapping[str, int]:
        found = await self.pg.list_slots()
        return {
            name: slot.restart_lsn
            for name, slot in found.items()
            if slot.restart_lsn is not None and not slot.temporary
        }

    async def remove_data_directory(self, reason: str) -> None:
        await self.pg.remove_data_directory(reason)

    async def close(self) -> None:
        if self._apply is not None and not self._apply.done():
            self._apply.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._apply
        await self.pg.close()


def make_postgres(settings: Settings) -> PostgresPort:
    """The daemon's PostgreSQL control for `settings` (the node's YAML)."""
    return PostgresPort(Postgres.from_settings(settings), settings.name)


def _conforms(port: PostgresPort) -> PostgresControl:
    return port  # mypy checks PostgresPort against the loop's protocol here
