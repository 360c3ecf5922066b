"""The simulator's kernel-like state machine, its kill list, its command line, and
the testing driver's checks, all without starting a process."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haagent.watchdog.driver import WatchdogDriver, WatchdogError
from haagent_lab.lab.watchdog_simulator import read_events, simulator_argv
from haagent_lab.watchdog import proctree
from haagent_lab.watchdog.simulator import OPTIONS, SimulatedWatchdog, Targets, parse_args
from haagent_lab.watchdog.testing_driver import TestingWatchdogDriver


def armed(now: float = 100.0, timeout: int = 60) -> SimulatedWatchdog:
    state = SimulatedWatchdog(timeout=timeout)
    state.open(now)
    return state


def test_opening_starts_the_timer_with_the_default_timeout() -> None:
    state = armed(100.0)
    assert state.armed and state.deadline == 160.0
    assert not state.expired(159.9)
    assert state.expired(160.0)


def test_settimeout_sets_and_pings() -> None:
    state = armed(100.0)
    assert state.handle("SETTIMEOUT 2", 150.0) == "OK 2"
    assert state.handle("GETTIMEOUT", 150.5) == "OK 2"
    assert state.deadline == 152.0


@pytest.mark.parametrize("line", ["SETTIMEOUT 0", "SETTIMEOUT 70000", "SETTIMEOUT x"])
def test_settimeout_out_of_range_is_einval(line: str) -> None:
    state = armed()
    assert state.handle(line, 101.0).startswith("ERR EINVAL")
    assert state.timeout == 60


def test_keepalive_pings_and_getters_do_not() -> None:
    state = armed(100.0, timeout=2)
    assert state.handle("KEEPALIVE", 101.0) == "OK"
    assert state.deadline == 103.0
    state.handle("GETTIMEOUT", 102.0)
    state.handle("GETSUPPORT", 102.0)
    assert state.deadline == 103.0


def test_getsupport_reports_settimeout_and_magic_close() -> None:
    reply = armed().handle("GETSUPPORT", 100.0)
    assert reply == f"OK {OPTIONS} 0 haagent watchdog simulator"


def test_close_after_v_stops_the_timer() -> None:
    state = armed()
    state.handle("V", 101.0)
    assert state.release() is True
    assert not state.armed and not state.expired(1e9)


def test_close_without_v_keeps_it_running() -> None:
    state = armed()
    assert state.release() is False
    assert state.armed and state.expired(1e9)


def test_a_write_after_v_cancels_the_magic() -> None:
    state = armed()
    state.handle("V", 101.0)
    state.handle("KEEPALIVE", 102.0)
    assert state.release() is False


def test_unknown_request_is_refused() -> None:
    assert armed().handle("REBOOT", 100.0).startswith("ERR EINVAL unknown request")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    try:
        yield child
    finally:
        for pid in proctree.with_descendants([child.pid])[1:]:
            os.kill(pid, 9)
        child.kill()
        child.wait()


def test_targets_come_from_pids_pidfiles_data_dirs_and_their_children(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    proctree_children = _wait_children(sleeper.pid)
    (tmp_path / "agent.pid").write_text(f"{sleeper.pid}\n")
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "postmaster.pid").write_text(f"{sleeper.pid}\n{pgdata}\n")
    for targets in (
        Targets(pids=(sleeper.pid,)),
        Targets(pidfiles=(tmp_path / "agent.pid",)),
        Targets(data_dirs=(pgdata,)),
    ):
        assert targets.resolve() == [sleeper.pid, *proctree_children]
    assert Targets(data_dirs=(tmp_path / "missing",)).resolve() == []
    assert Targets(pids=(sleeper.pid,), exclude={sleeper.pid}).resolve() == proctree_children


def test_the_peer_is_killed_only_when_asked_and_only_if_it_is_the_same_process(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = proctree.start_time(sleeper.pid)
    assert started is not None
    children = _wait_children(sleeper.pid)
    assert Targets(peer=(sleeper.pid, started)).resolve() == []
    assert Targets(peer=(sleeper.pid, started), kill_peer=True).resolve() == [
        sleeper.pid,
        *children,
    ]
    assert Targets(peer=(sleeper.pid, started + 1), kill_peer=True).resolve() == []


def _wait_children(pid: int) -> list[int]:
    for _ in range(100):
        children = proctree.with_descendants([pid])[1:]
        if children:
            return children
        time.sleep(0.02)
    raise AssertionError("no child appeared")


def test_pidfile_reading(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    assert proctree.read_pidfile(path) is None
    path.write_text("garbage\n")
    assert proctree.read_pidfile(path) is None
    path.write_text("1\n")
    assert proctree.read_pidfile(path) is None  # never init
    path.write_text("4242\n/data\n")
    assert proctree.read_pidfile(path) == 4242


def test_never_kills_itself() -> None:
    assert proctree.with_descendants([os.getpid()]) == []
    assert proctree.kill_all([os.getpid(), 1, 0]) == []


def test_simulator_argv_round_trips_through_the_parser(tmp_path: Path) -> None:
    argv = simulator_argv(
        tmp_path / "s.sock",
        node="node1",
        kill_peer=True,
        kill_pids=[10, 11],
        kill_pidfiles=[tmp_path / "a.pid"],
        pgdata=[tmp_path / "pgdata"],
        events=tmp_path / "events.jsonl",
        min_timeout=5,
    )
    assert argv[:3] == [sys.executable, "-m", "haagent_lab.watchdog.simulator"]
    args = parse_args(argv[3:])
    assert args == argparse.Namespace(
        socket=str(tmp_path / "s.sock"),
        node="node1",
        kill_peer=True,
        kill_pid=[10, 11],
        kill_pidfile=[str(tmp_path / "a.pid")],
        pgdata=[str(tmp_path / "pgdata")],
        events=str(tmp_path / "events.jsonl"),
        default_timeout=60,
        min_timeout=5,
        max_timeout=65535,
    )


def test_read_events_filters_by_kind(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert read_events(path) == []
    path.write_text('{"event": "open"}\n{"event": "reset", "killed": [3]}\n')
    assert read_events(path, "reset") == [{"event": "reset", "killed": [3]}]
    assert len(read_events(path)) == 2


def test_testing_driver_is_a_driver_and_explains_a_missing_simulator(tmp_path: Path) -> None:
    path = str(tmp_path / "watchdog.sock")
    driver = TestingWatchdogDriver(path)
    assert isinstance(driver, WatchdogDriver)
    assert "python -m haagent_lab.watchdog.simulator --socket" in (driver.probe() or "")
    with pytest.raises(WatchdogError, match="does not exist: start `python -m haagent"):
        driver.open()
    assert not driver.is_open
    (tmp_path / "watchdog.sock").write_text("")
    assert "is not a socket" in (driver.probe() or "")
    with pytest.raises(WatchdogError, match="the device is not open"):
        driver.keepalive()
