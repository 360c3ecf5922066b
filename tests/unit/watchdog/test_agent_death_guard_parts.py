"""The agent-death guard: its pure parts, its stop sequence on a stand-in postmaster, and
the guard process driven through its pipe as the agent drives it.

The stand-in "postmaster" is a Python interpreter started through a symlink named
`postgres`, with `-D <data dir>` on its command line, so /proc/PID/cmdline looks like a
real postmaster's; it writes its pid to `<data dir>/postmaster.pid`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haagent.config.model import (
    LogSettings,
    PostgresqlSettings,
    Settings,
    WatchdogSettings,
)
from haagent.watchdog import guard as guard_module
from haagent.watchdog.guard import (
    MAX_LINE,
    GuardProtocol,
    boottime,
    parse_lease,
    parse_postmaster_pid,
    postmaster_mismatch,
    process_alive,
    stop_postgres,
    verified_postmaster,
)
from haagent.watchdog.guard_client import (
    GUARD_SCRIPT,
    AgentDeathGuard,
    GuardError,
    guard_argv,
    guard_pids,
    start_guard,
)
from support.fake_postmaster import FakePostmaster


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module, "log", guard_module.Log())  # the guard's own log lines
    # haactl's tests leave the `haagent` logger at ERROR.
    caplog.set_level(logging.INFO, "haagent")


def guard_lines() -> str:
    """What the guard's functions logged in this test (the guard has its own small log)."""
    return "\n".join(guard_module.log.lines)


# --- postmaster.pid


@pytest.mark.parametrize(
    ("text", "pid"),
    [
        ("4242\n/var/lib/postgresql/15/main\n1700000000\n5432\n", 4242),
        ("4242", 4242),
        ("  4242  \n", 4242),
        ("", None),
        ("\n4242\n", None),
        ("abc\n", None),
        ("-5\n", None),
        ("1\n", None),  # never init
        ("0\n", None),
        ("42.5\n", None),
    ],
)
def test_postmaster_pid_is_the_first_line(text: str, pid: int | None) -> None:
    assert parse_postmaster_pid(text) == pid


# --- the command line check


def cmdline(*args: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in args)


PG = "/usr/lib/postgresql/15/bin/postgres"


def test_a_postmaster_of_the_data_dir_matches(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conf = f"--config-file={data}/postgresql.conf"
    assert postmaster_mismatch(cmdline(PG, "-D", str(data), conf), data, None) is None
    assert postmaster_mismatch(cmdline(PG, f"-D{data}"), data, None) is None
    assert postmaster_mismatch(cmdline("postgres", "-D", f"{data}/"), data, None) is None
    assert (
        postmaster_mismatch(cmdline("/opt/pg/bin/postmaster", "-D", str(data)), data, None) is None
    )
    link = tmp_path / "link"
    link.symlink_to(data)
    assert postmaster_mismatch(cmdline(PG, "-D", str(link)), data, None) is None


def test_without_an_absolute_data_dir_the_working_directory_decides(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert postmaster_mismatch(cmdline(PG), data, str(data)) is None  # PGDATA from the env
    assert postmaster_mismatch(cmdline(PG, "-D", "data"), data, str(data)) is None
    why = postmaster_mismatch(cmdline(PG, "-D", "data"), data, "/somewhere/else")
    assert why is not None and "not one running in" in why
    why = postmaster_mismatch(cmdline(PG), data, None)
    assert why is not None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "no command line"),
        (("/usr/bin/python3", "-m", "http.server"), "is not a PostgreSQL server"),
        (("/bin/sleep", "100"), "is not a PostgreSQL server"),
        (("postgres: 15/main: checkpointer ",), "is not a PostgreSQL server"),
        (("/usr/bin/postgresql-thing", "-D", "/x"), "is not a PostgreSQL server"),
        ((PG, "-D", "/var/lib/postgresql/15/other"), "not of"),
    ],
)
def test_anything_else_is_left_alone(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    why = postmaster_mismatch(cmdline(*args), tmp_path, None)
    assert why is not None and expected in why, why


# --- the armed/disarmed protocol

LEASE_LINE = b"LEASE 1000.000 5.000\n"


def armed(protocol: GuardProtocol) -> bool:
    return protocol.armed


def test_the_guard_starts_disarmed_and_follows_the_agent() -> None:
    protocol = GuardProtocol()
    assert protocol.verdict()[0] is False
    assert protocol.stop_at is None
    [message] = protocol.feed(LEASE_LINE)
    assert armed(protocol) and message.startswith("armed: ")
    assert protocol.stop_at == 995.0
    assert protocol.feed(b"LEASE 1010.000 5.000\n") == []  # a renewal: nothing to log
    assert protocol.stop_at == 1005.0
    stop, why = protocol.verdict()
    assert stop and "held the leader key" in why
    [message] = protocol.feed(b"DISARM\n")
    assert not armed(protocol) and message.startswith("disarmed: ")
    assert protocol.stop_at is None
    stop, why = protocol.verdict()
    assert not stop and "left alone" in why


def test_lines_may_arrive_in_pieces_and_together() -> None:
    protocol = GuardProtocol()
    assert protocol.feed(b"LEASE 10") == []
    assert not armed(protocol)
    assert len(protocol.feed(b"00 5\nDISARM\nLEASE 2000 1\n")) == 3
    assert armed(protocol)
    assert protocol.stop_at == 1999.0


def test_a_partial_last_line_changes_nothing() -> None:
    protocol = GuardProtocol()
    protocol.feed(LEASE_LINE + b"DISAR")  # the agent died in the middle of a write
    assert protocol.verdict()[0] is True
    protocol = GuardProtocol()
    protocol.feed(LEASE_LINE.rstrip())
    assert protocol.verdict()[0] is False


def test_unknown_lines_are_reported_and_ignored() -> None:
    protocol = GuardProtocol()
    [message] = protocol.feed(LEASE_LINE + b"SELF-DESTRUCT\n\n")[1:]
    assert "unknown request 'SELF-DESTRUCT'" in message
    assert armed(protocol)


@pytest.mark.parametrize(
    "line", ["LEASE", "LEASE 1", "LEASE x 1", "LEASE 1 -1", "LEASE nan 1", "LEASE 1 inf", "ARM"]
)
def test_malformed_leases_are_ignored(line: str) -> None:
    assert parse_lease(line) is None
    protocol = GuardProtocol()
    [message] = protocol.feed(line.encode() + b"\n")
    assert "unknown request" in message and not armed(protocol)


def test_a_lease_may_name_its_etcd_lease_and_etcd_access_comes_once() -> None:
    protocol = GuardProtocol()
    protocol.feed(b"LEASE 1000 5 5224447411924838407\n")
    assert protocol.lease == 5224447411924838407 and protocol.stop_at == 995.0
    access = b'ETCD {"endpoints":["https://10.0.0.1:2379"],"cacert":"/ca.pem","user":"u"}\n'
    assert protocol.feed(access) == []
    assert protocol.etcd is not None and protocol.etcd["user"] == "u"


@pytest.mark.parametrize(
    "line",
    [
        b"ETCD nope",
        b"ETCD []",
        b'ETCD {"endpoints": []}',
        b'ETCD {"endpoints": ["ftp://x"]}',
        b'ETCD {"endpoints": ["http://x:1"], "user": 5}',
    ],
)
def test_malformed_etcd_access_is_ignored(line: bytes) -> None:
    protocol = GuardProtocol()
    assert protocol.feed(line + b"\n") == ["ignoring a malformed ETCD request"]
    assert protocol.etcd is None


@pytest.mark.parametrize("lease", ["0", "-1", "9223372036854775808", "x"])
def test_a_bad_lease_id_makes_the_line_malformed(lease: str) -> None:
    assert parse_lease(f"LEASE 1000 5 {lease}") is None


def test_input_without_newlines_does_not_grow_without_bound() -> None:
    protocol = GuardProtocol()
    protocol.feed(LEASE_LINE)
    messages = protocol.feed(b"x" * (MAX_LINE + 1))
    assert messages == [f"ignoring more than {MAX_LINE} bytes without a newline"]
    assert protocol.feed(b"y" * (MAX_LINE + 1)) == []  # said once
    assert len(protocol._pending) <= MAX_LINE
    assert armed(protocol)  # the earlier lease stands
    assert protocol.feed(b"\nDISARM\n")[-1].startswith("disarmed")


def test_after_the_fence_fired_the_guard_stays_expired_until_a_new_lease() -> None:
    protocol = GuardProtocol()
    protocol.feed(LEASE_LINE)
    protocol.fired()
    assert armed(protocol) and protocol.expired
    assert protocol.verdict()[0] is True  # the agent dying now: stop again (if anything runs)
    protocol.feed(b"LEASE 3000 2\n")
    assert armed(protocol) and not protocol.expired and protocol.stop_at == 2998.0
    protocol.fired()
    protocol.feed(b"DISARM\n")
    assert not armed(protocol) and not protocol.expired


# --- a stand-in postmaster (tests/support/fake_postmaster.py)


@pytest.fixture
def postmasters(tmp_path: Path) -> Iterator[list[FakePostmaster]]:
    made: list[FakePostmaster] = []
    yield made
    for p in made:
        p.stop()


def fake(postmasters: list[FakePostmaster], base: Path, mode: str = "obedient") -> FakePostmaster:
    postmaster = FakePostmaster(base, mode)
    postmasters.append(postmaster)
    return postmaster


def test_the_stand_in_passes_the_check(tmp_path: Path, postmasters: list[FakePostmaster]) -> None:
    postmaster = fake(postmasters, tmp_path)
    assert verified_postmaster(postmaster.data_dir) == (postmaster.pid, "")


def test_fast_shutdown_first(tmp_path: Path, postmasters: list[FakePostmaster]) -> None:
    postmaster = fake(postmasters, tmp_path)
    started = time.monotonic()
    assert stop_postgres(postmaster.data_dir, fast_grace=5.0, immediate_grace=5.0)
    assert time.monotonic() - started < 4.0
    postmaster.process.wait(5)
    assert postmaster.process.returncode == -signal.SIGINT


def test_immediate_shutdown_when_the_fast_one_does_not_end_it(
    tmp_path: Path, postmasters: list[FakePostmaster], caplog: pytest.LogCaptureFixture
) -> None:
    postmaster = fake(postmasters, tmp_path, "stubborn")
    assert stop_postgres(postmaster.data_dir, fast_grace=0.5, immediate_grace=5.0)
    postmaster.process.wait(5)
    assert postmaster.process.returncode == -signal.SIGQUIT
    assert "immediate shutdown (SIGQUIT)" in guard_lines()


def test_a_postmaster_that_ignores_both_is_reported(
    tmp_path: Path, postmasters: list[FakePostmaster], caplog: pytest.LogCaptureFixture
) -> None:
    postmaster = fake(postmasters, tmp_path, "deaf")
    assert not stop_postgres(postmaster.data_dir, fast_grace=0.3, immediate_grace=0.3)
    assert not postmaster.gone()
    assert "giving up" in guard_lines()


def test_a_recycled_pid_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (data / "postmaster.pid").write_text(f"{other.pid}\n{data}\n")
        pid, why = verified_postmaster(data)
        assert pid is None and "is not a PostgreSQL server" in why
        assert stop_postgres(data, fast_grace=0.2, immediate_grace=0.2)
        assert other.poll() is None, "a process that is not the postmaster was signalled"
        assert "nothing to stop" in guard_lines()
    finally:
        other.kill()
        other.wait()


def test_no_postmaster_nothing_to_do(tmp_path: Path) -> None:
    assert verified_postmaster(tmp_path)[0] is None
    (tmp_path / "postmaster.pid").write_text("999999999\n")
    pid, why = verified_postmaster(tmp_path)
    assert pid is None and "does not run" in why
    assert stop_postgres(tmp_path, fast_grace=0.1, immediate_grace=0.1)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while process_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not process_alive(child.pid)  # exited, not reaped yet
    child.wait()


# --- the guard process, driven as the agent drives it


def settings_for(data_dir: Path, **watchdog: object) -> Settings:
    return Settings(
        scope="test",
        name="node1",
        postgresql=PostgresqlSettings(data_dir=data_dir),
        watchdog=WatchdogSettings(mode="off", **watchdog),  # type: ignore[arg-type]
        log=LogSettings(level="INFO"),
    )


def guard_fds(pid: int) -> dict[int, str]:
    fds = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            fds[int(entry.name)] = os.readlink(entry)
        except OSError:
            continue
    return fds


def environ_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def settled_fds(pid: int) -> dict[int, str]:
    """The guard's descriptors once it let go of stdout (right after its READY)."""
    deadline = time.monotonic() + 10
    while guard_fds(pid).get(1) != os.devnull and time.monotonic() < deadline:
        time.sleep(0.01)
    return guard_fds(pid)


async def started_guard(data_dir: Path) -> AgentDeathGuard:
    return await AgentDeathGuard.start(guard_argv(settings_for(data_dir), agent_pid=os.getpid()))


async def wait_exit(guard: AgentDeathGuard, timeout: float = 15.0) -> int:
    return await asyncio.wait_for(guard.process.wait(), timeout)


async def test_the_guard_holds_only_its_pipe_and_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAAGENT_SUPERUSER_PASSWORD", "s3cret")
    monkeypatch.setenv("PGPASSWORD", "s3cret")
    guard = await started_guard(tmp_path)
    try:
        assert b"s3cret" not in environ_of(guard.pid)
        fds = settled_fds(guard.pid)
        assert set(fds) == {0, 1, 2}, fds
        assert fds[0].startswith("pipe:") and fds[1] == os.devnull
        assert os.getsid(guard.pid) == guard.pid  # its own session
        assert guard_pids(tmp_path) == [guard.pid]
    finally:
        await guard.close()
    assert guard.process.returncode == 0
    assert guard_pids(tmp_path) == []


async def test_armed_guard_stops_postgres_when_the_pipe_closes(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    assert guard.hold(boottime() + 60, 5) and guard.armed
    await asyncio.sleep(0.2)
    # The agent dies: its end of the pipe is closed without a DISARM.
    assert guard.process.stdin is not None
    guard.process.stdin.close()
    assert await wait_exit(guard) == 0
    postmaster.process.wait(10)
    assert postmaster.process.returncode == -signal.SIGINT


async def test_disarmed_guard_leaves_postgres_alone(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    guard.hold(boottime() + 60, 5)
    guard.release()
    assert guard.process.stdin is not None
    guard.process.stdin.close()
    assert await wait_exit(guard) == 0
    await asyncio.sleep(0.3)
    assert not postmaster.gone()


async def test_a_clean_close_releases_first(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    guard.hold(boottime() + 60, 5)
    guard.release()
    await guard.close()
    assert guard.process.returncode == 0
    await asyncio.sleep(0.3)
    assert not postmaster.gone()


async def test_closing_while_armed_stops_postgres(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    # A shutdown that could not stop a primary in time leaves without disarming: the guard
    # stops PostgreSQL rather than leave it running with nobody renewing its key.
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    guard.hold(boottime() + 60, 5)
    await guard.close()
    postmaster.process.wait(10)
    assert postmaster.process.returncode == -signal.SIGINT


async def test_the_lease_fence_stops_postgres_before_the_lease_can_expire(
    tmp_path: Path, postmasters: list[FakePostmaster], caplog: pytest.LogCaptureFixture
) -> None:
    # The agent renewed once and then nothing (SIGSTOPped, starved, blocked): the guard
    # stops PostgreSQL `margin` seconds before the lease expires, on its own clock.
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    expires = boottime() + 1.5
    guard.hold(expires, 1.0)
    await asyncio.sleep(0.2)
    assert not postmaster.gone()
    postmaster.process.wait(10)
    stopped = boottime()
    assert postmaster.process.returncode == -signal.SIGINT
    assert expires - 1.0 <= stopped < expires
    # The guard goes on, disarmed: a new lease arms it again, the end of file then stops
    # nothing (no postmaster left) and it exits cleanly.
    assert guard.hold(boottime() + 60, 5)
    await guard.close()
    assert guard.process.returncode == 0


async def test_a_postgres_started_after_the_lease_expired_is_stopped_too(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    # A start already under way when the lease ran out must not come up as a primary.
    guard = await started_guard(tmp_path / "data")
    (tmp_path / "data").mkdir()
    guard.hold(boottime() + 0.3, 0.2)  # fires at +0.1 s: nothing runs yet
    await asyncio.sleep(0.5)
    postmaster = fake(postmasters, tmp_path)
    postmaster.process.wait(10)
    assert postmaster.process.returncode in (-signal.SIGINT, -signal.SIGQUIT)
    # A new lease ends the expiry: the next PostgreSQL is left alone.
    guard.hold(boottime() + 60, 5)
    await asyncio.sleep(0.2)
    again = fake(postmasters, tmp_path)
    await asyncio.sleep(0.5)
    assert not again.gone()
    guard.release()
    await guard.close()


async def test_sigterm_to_an_armed_guard_stops_postgres_first(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    # `systemctl kill` signals every process of the unit: an armed guard must not just go.
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    guard.hold(boottime() + 60, 5)
    await asyncio.sleep(0.2)
    guard.process.terminate()
    assert await wait_exit(guard) == 0
    postmaster.process.wait(10)
    assert postmaster.process.returncode == -signal.SIGINT


async def test_renewals_keep_the_fence_away(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    postmaster = fake(postmasters, tmp_path)
    guard = await started_guard(postmaster.data_dir)
    for _ in range(10):
        guard.hold(boottime() + 0.8, 0.5)  # stop at +0.3 s unless renewed
        await asyncio.sleep(0.1)
    assert not postmaster.gone()
    guard.release()
    await asyncio.sleep(0.5)
    assert not postmaster.gone()
    await guard.close()


async def test_a_lease_with_no_time_left_stops_at_once(
    tmp_path: Path, postmasters: list[FakePostmaster]
) -> None:
    # The agent's renewal failed: it fires the fence (stop now, immediate at the expiry).
    postmaster = fake(postmasters, tmp_path, "stubborn")
    guard = await started_guard(postmaster.data_dir)
    now = boottime()
    guard.hold(now + 0.5, 0.5)
    postmaster.process.wait(10)
    assert postmaster.process.returncode == -signal.SIGQUIT  # ignored SIGINT, then immediate
    assert boottime() - now < 3.0
    await guard.close()


async def test_a_dead_guard_is_noticed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard = await started_guard(tmp_path)
    guard.process.kill()
    await wait_exit(guard)
    assert not guard.hold(boottime() + 60, 5)
    assert not guard.hold(boottime() + 60, 5)
    assert caplog.text.count("agent-death guard (pid") == 1
    await guard.close()


async def test_a_guard_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GuardError, match="exited at once"):
        await AgentDeathGuard.start([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(GuardError, match="unexpected answer"):
        await AgentDeathGuard.start([sys.executable, "-c", "print('hello')"])
    with pytest.raises(GuardError, match="cannot run"):
        await AgentDeathGuard.start([str(tmp_path / "no-such-python")])


async def test_start_guard_warns_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert await start_guard(settings_for(tmp_path)) is None
    assert "agent-death guard could not be started" in caplog.text
    assert await start_guard(settings_for(tmp_path, agent_death_guard=False)) is None
    assert "agent-death guard disabled" in caplog.text
    assert "lease fence runs inside the agent" in caplog.text


def test_the_command_line_carries_the_log_settings(tmp_path: Path) -> None:
    s = settings_for(tmp_path / "data")
    argv = guard_argv(s, agent_pid=1234, python="/usr/bin/python3")
    assert argv[:4] == ["/usr/bin/python3", "-I", "-S", str(GUARD_SCRIPT)]
    assert argv[argv.index("--data-dir") + 1] == str(tmp_path / "data")
    assert argv[argv.index("--agent-pid") + 1] == "1234"
    assert "--log-file" not in argv
    logged = Settings(
        scope=s.scope, name=s.name, postgresql=s.postgresql, log=LogSettings(dir=tmp_path)
    )
    argv = guard_argv(logged, agent_pid=1234)
    assert argv[argv.index("--log-file") + 1] == str(tmp_path / "haagent.log")
