"""The user's scripts: Patroni's calling conventions, which events an action fires, and
the per-node callback queue (in order, bounded, never waited for)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from haagent.config.model import CustomBootstrap, ReplicaMethod
from haagent.core.actions import (
    Demote,
    Follow,
    Promote,
    RestartPostgres,
    StartPostgres,
    StopPostgres,
)
from haagent.core.callbacks import CallbackEvent, callbacks_after
from haagent.core.roles import Role
from haagent.engine.callbacks import CallbackQueue, callback_argv
from haagent.engine.hooks import run_hook
from haagent.postgres.bootstrap import custom_argv
from haagent.postgres.model import PostgresStatus
from haagent.postgres.proc import Completed
from haagent.postgres.replica import method_argv

PRIMARY = PostgresStatus(True, True, True, True, in_recovery=False)
REPLICA = PostgresStatus(True, True, True, True, in_recovery=True)
STOPPED = PostgresStatus(True, True, False)


# --- calling conventions


def test_a_callback_is_called_script_event_role_scope() -> None:
    argv = callback_argv(
        "/usr/local/bin/vip.sh --dev 'eth 0'", CallbackEvent("on_start", "replica"), "batman"
    )
    assert argv == ["/usr/local/bin/vip.sh", "--dev", "eth 0", "on_start", "replica", "batman"]


def test_a_replica_method_gets_its_own_keys_then_patronis_arguments() -> None:
    method = ReplicaMethod(
        "pgbackrest",
        command="/usr/bin/pgbackrest --stanza=main restore",
        keep_data=True,
        options=(("keep_data", "True"), ("delta", "True"), ("process-max", "4")),
    )
    argv = method_argv(method, "batman", Path("/data"), "host=h port=5 user=r")
    assert argv == [
        "/usr/bin/pgbackrest", "--stanza=main", "restore",
        "--keep_data=True", "--delta=True", "--process-max=4",
        "--scope=batman", "--role=replica", "--datadir=/data", "--connstring=host=h port=5 user=r",
    ]  # fmt: skip


def test_a_replica_method_with_no_params_gets_only_its_own_keys() -> None:
    method = ReplicaMethod(
        "wal_g",
        command="wal-g-restore",
        no_params=True,
        no_leader=True,
        options=(("no_params", "True"), ("no_leader", "True"), ("envdir", "/etc/wal-g")),
    )
    assert method_argv(method, "batman", Path("/data"), "") == [
        "wal-g-restore",
        "--envdir=/etc/wal-g",
    ]


def test_a_replica_method_with_no_source_gets_an_empty_connstring() -> None:
    argv = method_argv(ReplicaMethod("restore", command="restore"), "b", Path("/d"), "")
    assert argv[-1] == "--connstring="


def test_a_custom_bootstrap_gets_scope_datadir_then_its_own_keys() -> None:
    method = CustomBootstrap("pitr", "/opt/restore.sh --fast", options=(("target", "2026-01-01"),))
    assert custom_argv(method, "batman", Path("/data")) == [
        "/opt/restore.sh", "--fast", "--scope=batman", "--datadir=/data", "--target=2026-01-01"
    ]  # fmt: skip
    bare = CustomBootstrap("pitr", "/opt/restore.sh", no_params=True, options=(("a", "1"),))
    assert custom_argv(bare, "batman", Path("/data")) == ["/opt/restore.sh", "--a=1"]


# --- which events an action fires (as Patroni does)


@pytest.mark.parametrize(
    ("action", "before", "decided", "announced", "expected"),
    [
        (StartPostgres("replica"), STOPPED, Role.REPLICA, None, [("on_start", "replica")]),
        (StartPostgres("primary"), STOPPED, Role.PRIMARY, None, [("on_start", "primary")]),
        # a switchover: the old primary stops as demoted, then starts as a replica
        (StopPostgres("fast"), PRIMARY, Role.DEMOTED, "primary", [("on_stop", "demoted")]),
        (StartPostgres("replica"), STOPPED, Role.REPLICA, "demoted",
         [("on_role_change", "replica")]),
        # a shutdown of the primary, then a start as a replica is a role change too
        (StopPostgres("fast"), PRIMARY, Role.PRIMARY, "primary", [("on_stop", "primary")]),
        (StartPostgres("replica"), STOPPED, Role.REPLICA, "primary",
         [("on_role_change", "replica")]),
        (StopPostgres("fast"), REPLICA, Role.REPLICA, "replica", [("on_stop", "replica")]),
        (StopPostgres("fast"), STOPPED, Role.REPLICA, "replica", []),
        (Promote(), REPLICA, Role.PRIMARY, "replica", [("on_role_change", "primary")]),
        (Demote("immediate"), PRIMARY, Role.DEMOTED, "primary",
         [("on_stop", "primary"), ("on_role_change", "replica")]),
        (RestartPostgres("replica"), REPLICA, Role.REPLICA, "replica", [("on_restart", "replica")]),
        (Follow("node1"), REPLICA, Role.REPLICA, "replica", []),
    ],
)  # fmt: skip
def test_the_events_an_action_fires(
    action: Any,
    before: PostgresStatus,
    decided: Role,
    announced: str | None,
    expected: list[tuple[str, str]],
) -> None:
    events = callbacks_after(action, before, decided, announced)
    assert [(e.name, e.role) for e in events] == expected


# --- the queue


class SlowRunner:
    """Records every call; each takes `delay` seconds (or times out at `hang`)."""

    def __init__(self, delay: float = 0.0, hang: set[str] | None = None) -> None:
        self.delay = delay
        self.hang = hang or set()
        self.started: list[tuple[str, ...]] = []
        self.finished: list[tuple[str, ...]] = []

    async def __call__(self, argv: Sequence[str], *, timeout: float, **_: Any) -> Completed:
        self.started.append(tuple(argv))
        if argv[-3] in self.hang:
            await asyncio.sleep(timeout)
            raise TimeoutError
        await asyncio.sleep(self.delay)
        self.finished.append(tuple(argv))
        return Completed(tuple(argv), 0, "done\n", "", self.delay)


def queue(runner: SlowRunner, timeout: float = 5.0) -> CallbackQueue:
    commands = {name: "cb.sh" for name in ("on_start", "on_stop", "on_role_change", "on_reload")}
    loop = asyncio.get_running_loop()
    return CallbackQueue(commands, "batman", timeout, clock=loop.time, runner=runner)


def test_firing_never_waits_and_every_event_runs_in_order(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[float, SlowRunner, CallbackQueue]:
        runner = SlowRunner(delay=0.05)
        q = queue(runner)
        loop = asyncio.get_running_loop()
        started = loop.time()
        q.fire(CallbackEvent("on_stop", "demoted"), "switchover_demoting")
        q.fire(CallbackEvent("on_role_change", "replica"), "starting_replica")
        q.fire(CallbackEvent("on_reload", "replica"), "follow_new_leader")
        fired_in = loop.time() - started
        assert await q.drain(5)
        await q.close(1)
        return fired_in, runner, q

    caplog.set_level("INFO", "haagent.callbacks")
    fired_in, runner, q = asyncio.run(scenario())
    assert fired_in < 0.05  # firing queued the three, it ran none of them
    # None killed by the next one, none lost: each ran to its end, in order.
    assert [a[-3:] for a in runner.finished] == [
        ("on_stop", "demoted", "batman"),
        ("on_role_change", "replica", "batman"),
        ("on_reload", "replica", "batman"),
    ]
    assert [r.returncode for r in q.done] == [0, 0, 0]
    lines = [r.getMessage() for r in caplog.records]
    assert any("on_stop demoted batman (switchover_demoting): exit 0" in m for m in lines), lines
    assert any("output: done" in m for m in lines)


def test_a_callback_past_its_timeout_is_killed_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> SlowRunner:
        runner = SlowRunner(hang={"on_start"})
        q = queue(runner, timeout=0.1)
        q.fire(CallbackEvent("on_start", "replica"), "starting_replica")
        q.fire(CallbackEvent("on_stop", "replica"), "shutdown")
        assert await q.drain(5)
        await q.close(1)
        return runner

    caplog.set_level("INFO", "haagent.callbacks")
    runner = asyncio.run(scenario())
    assert [a[-3] for a in runner.finished] == ["on_stop"]
    assert any("killed after 0.1s (postgresql.callback_timeout)" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_an_event_without_a_script_is_not_run_but_still_counts_as_announced() -> None:
    async def scenario() -> tuple[SlowRunner, CallbackQueue]:
        runner = SlowRunner()
        loop = asyncio.get_running_loop()
        q = CallbackQueue({"on_reload": "cb.sh"}, "b", 1, clock=loop.time, runner=runner)
        q.fire(CallbackEvent("on_stop", "demoted"), "switchover_demoting")
        assert await q.drain(1)
        await q.close(1)
        return runner, q

    runner, q = asyncio.run(scenario())
    assert runner.started == []
    assert q.announced and q.last_role == "demoted"


# --- pre_promote and before_stop


def test_a_hook_that_exits_non_zero_says_why() -> None:
    async def failing(argv: Sequence[str], *, timeout: float, **_: Any) -> Completed:
        return Completed(tuple(argv), 3, "", "vip still held\n", 0.01)

    problem = asyncio.run(run_hook("postgresql.pre_promote", "check.sh --x", 5, failing))
    assert problem is not None and "exited with 3" in problem and "vip still held" in problem


def test_a_hook_that_exits_0_is_fine_and_one_that_cannot_run_is_a_problem() -> None:
    async def ok(argv: Sequence[str], *, timeout: float, **_: Any) -> Completed:
        return Completed(tuple(argv), 0, "", "", 0.01)

    assert asyncio.run(run_hook("postgresql.pre_promote", "true", 5, ok)) is None
    problem = asyncio.run(run_hook("postgresql.pre_promote", "/nonexistent/script", 5))
    assert problem is not None and problem.startswith("cannot run")
