"""The agent-death guard and lease fence: a process that stops the local PostgreSQL when
its agent can no longer prove that it holds the leader key.

Two failures leave a primary running with nobody renewing its leader key; once the
key's ttl runs out a replica is promoted, and two primaries accept writes:

- the agent dies (SIGKILL, a crash): the kernel closes its end of our pipe;
- the agent stalls (SIGSTOP, CPU starvation, swap, a call that blocks its event loop,
  a long CHECKPOINT in its way): it is alive but renews nothing.

The guard covers both without depending on the agent's event loop.

    python -m haagent.watchdog.guard --data-dir DIR [--agent-pid PID]
        [--fast-grace 3] [--immediate-grace 5]
        [--log-file FILE] [--log-format FMT] [--log-level LEVEL]

The agent starts one guard at startup (`guard_client.py`), in its own session, with
its stdin a pipe from the agent and no other descriptor of the agent's.  The guard
answers `READY` on stdout once, then reads lines from the pipe:

- `LEASE <expires> <margin>`: this agent holds the leader key and PostgreSQL may run
  as a primary until `expires` (seconds on CLOCK_BOOTTIME, a clock that keeps counting
  through a suspend); sent after every renewal of the key.  If no later LEASE arrives,
  the guard starts a fast shutdown at `expires - margin` (new connections refused,
  every backend terminated: no write is acknowledged after this) and an immediate
  one at `expires` if PostgreSQL still runs.  A LEASE with `margin >= expires - now`
  is "stop now": the agent lost its lease.
- `DISARM`: PostgreSQL is not a primary (a replica, stopped, or maintenance mode).

When the pipe reaches end of file (the agent exited, however it exited), or the guard
finds itself re-parented (the agent is gone but a stray copy of the pipe is open):

- disarmed: the guard exits, PostgreSQL untouched (a clean exit disarms first);
- armed: the guard stops PostgreSQL at once (fast shutdown, immediate after
  `--fast-grace` seconds) and exits.

Stopping PostgreSQL: the guard reads the postmaster's pid from `DIR/postmaster.pid`,
checks that `/proc/PID/cmdline` is a postgres server for `DIR` (a recycled pid is left
alone), sends SIGINT (fast shutdown) and, past the grace, SIGQUIT (immediate).

Every decision is one log line with its reason, on stderr (the agent's log) and in
`--log-file` when given.  The guard only reads its pipe: it needs no etcd, no
network and no configuration file, and imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger("haagent.guard")

LEASE = "LEASE"
DISARM = "DISARM"
READY = b"READY\n"
SERVER_NAMES = ("postgres", "postmaster")
POLL = 0.05  # while armed, the clock is read at least this often
PARENT_CHECK_EVERY = 1.0
MAX_LINE = 256


# --- the pure parts


def parse_postmaster_pid(text: str) -> int | None:
    """The postmaster's pid: the first line of postmaster.pid (None when unusable)."""
    first = text.split("\n", 1)[0].strip()
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if pid > 1 else None


def _data_dir_argument(args: Sequence[str]) -> str | None:
    """The data directory a postgres command line names (-D DIR, -DDIR, data_directory=DIR)."""
    for i, arg in enumerate(args):
        if arg == "-D" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("-D") and len(arg) > 2:
            return arg[2:]
        for prefix in ("--data_directory=", "--data-directory=", "data_directory="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return None


def _same_path(a: str, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def postmaster_mismatch(cmdline: bytes, data_dir: str | Path, cwd: str | None) -> str | None:
    """None when `cmdline` (/proc/PID/cmdline) is a postgres server for `data_dir`; else why not.

    The data directory comes from the command line (`-D`); when it names none or a
    relative one, the process's working directory (`cwd`, /proc/PID/cwd: postgres
    runs in its data directory) has to be `data_dir`.
    """
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0")]
    while args and args[-1] == "":
        args.pop()
    if not args:
        return "it has no command line (an exited process or a kernel thread)"
    if os.path.basename(args[0]) not in SERVER_NAMES:
        return f"its command line {' '.join(args)[:120]!r} is not a PostgreSQL server's"
    named = _data_dir_argument(args[1:])
    if named is not None and os.path.isabs(named):
        if _same_path(named, data_dir):
            return None
        return f"it is the PostgreSQL server of {named}, not of {data_dir}"
    if cwd is not None and _same_path(cwd, data_dir):
        return None
    return f"it is a PostgreSQL server, but not one running in {data_dir} (cwd {cwd})"


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME: monotonic, and counting through a suspend of the machine."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def parse_lease(line: str) -> tuple[float, float] | None:
    """`(expires, margin)` of a `LEASE <expires> <margin>` line; None when malformed."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != LEASE:
        return None
    try:
        expires, margin = float(parts[1]), float(parts[2])
    except ValueError:
        return None
    if not (math.isfinite(expires) and math.isfinite(margin)) or margin < 0:
        return None
    return expires, margin


@dataclass
class GuardProtocol:
    """The guard's state, from the lines the agent wrote so far.

    Armed: PostgreSQL may run as a primary until `expires` (CLOCK_BOOTTIME); the
    fence stops it from `expires - margin` on.
    """

    armed: bool = False
    expires: float = 0.0
    margin: float = 0.0
    # The fence fired and no newer lease came: any PostgreSQL that appears is stopped too
    # (a start already under way when the lease ran out must not come up as a primary).
    expired: bool = False
    _pending: bytes = b""
    _overflowed: bool = False

    @property
    def stop_at(self) -> float | None:
        """When the lease fence stops PostgreSQL unless a later lease arrives; None: never."""
        return self.expires - self.margin if self.armed else None

    def feed(self, data: bytes) -> list[str]:
        """Apply every complete line of `data`; returns what to log (changes, bad lines)."""
        self._pending += data
        messages: list[str] = []
        while b"\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n", 1)
            self._overflowed = False
            line = raw.decode("ascii", "replace").strip()
            if line == DISARM:
                if self.armed:
                    self.armed = self.expired = False
                    messages.append("disarmed: PostgreSQL is not a primary; it is left alone")
                continue
            lease = parse_lease(line)
            if lease is not None:
                if not self.armed:
                    messages.append(
                        f"armed: the agent holds the leader key; PostgreSQL is stopped "
                        f"{lease[1]:.1f}s before its lease can expire unless renewed, and at "
                        "once if the agent dies"
                    )
                self.armed, (self.expires, self.margin) = True, lease
                self.expired = False
            elif line:
                messages.append(f"ignoring an unknown request {line[:60]!r}")
        if len(self._pending) > MAX_LINE:
            # A line this long is not ours: drop it rather than grow without bound.
            self._pending = b""
            if not self._overflowed:
                self._overflowed = True
                messages.append(f"ignoring more than {MAX_LINE} bytes without a newline")
        return messages

    def fired(self) -> None:
        """The fence stopped PostgreSQL: expired until the agent sends a new lease or DISARM."""
        self.expired = True

    def verdict(self) -> tuple[bool, str]:
        """`(stop PostgreSQL?, why)` once the agent is gone (a partial last line is ignored)."""
        if self.armed:
            return True, (
                "the agent died while it held the leader key and ran the primary: nobody "
                "renews the key, a replica will be promoted after ttl, so this primary stops now"
            )
        return False, "not armed (the agent does not lead, or stops cleanly): PostgreSQL left alone"


# --- processes


def process_alive(pid: int) -> bool:
    """`pid` runs (a zombie, which nobody may have reaped yet, does not)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = text[text.rfind(")") + 2 :].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def read_cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def read_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def wait_gone(pid: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> bool:
    deadline = clock() + seconds
    while process_alive(pid):
        if clock() >= deadline:
            return False
        time.sleep(POLL)
    return True


def verified_postmaster(data_dir: Path) -> tuple[int | None, str]:
    """`(pid, "")` of the postmaster of `data_dir`, or `(None, why there is none to stop)`."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = parse_postmaster_pid(pid_file.read_text())
    except FileNotFoundError:
        return None, f"no {pid_file}: PostgreSQL is not running"
    except OSError as exc:
        return None, f"cannot read {pid_file}: {exc}"
    if pid is None:
        return None, f"{pid_file} names no pid"
    if not process_alive(pid):
        return None, f"pid {pid} from {pid_file} does not run: PostgreSQL is not running"
    why = postmaster_mismatch(read_cmdline(pid), data_dir, read_cwd(pid))
    if why is not None:
        return None, f"pid {pid} from {pid_file} is left alone: {why}"
    return pid, ""


def stop_postgres(data_dir: Path, fast_grace: float, immediate_grace: float, why: str = "") -> bool:
    """Fast shutdown, then immediate; True when no postmaster of `data_dir` runs any more.

    The signal goes out before anything is logged: a log that blocks (a stalled journal or
    disk, likely in the very stall the guard exists for) must not delay it."""
    pid, found = verified_postmaster(data_dir)
    if pid is None:
        log.warning("%snothing to stop: %s", f"{why}: " if why else "", found)
        return True
    started = time.monotonic()
    try:
        sent = _signal(pid, signal.SIGINT)
        log.warning(
            "%sfast shutdown (SIGINT) sent to PostgreSQL (postmaster pid %d)",
            f"{why}: " if why else "",
            pid,
        )
        if not sent or wait_gone(pid, fast_grace):
            log.warning("PostgreSQL stopped (fast shutdown) in %.2fs", time.monotonic() - started)
            return True
        # Still the same server?  (A running process keeps its pid, but check anyway.)
        again, found = verified_postmaster(data_dir)
        if again != pid:
            log.warning("postmaster pid %d gone or replaced, not escalating: %s", pid, found)
            return not process_alive(pid)
        sent = _signal(pid, signal.SIGQUIT)
        log.warning(
            "PostgreSQL (pid %d) still ran %.1fs after SIGINT: immediate shutdown (SIGQUIT) sent",
            pid,
            fast_grace,
        )
        if not sent or wait_gone(pid, immediate_grace):
            took = time.monotonic() - started
            log.warning("PostgreSQL stopped (immediate shutdown) in %.2fs", took)
            return True
    except PermissionError as exc:
        log.error("cannot signal PostgreSQL (pid %d): %s; stop it by hand", pid, exc)
        return False
    log.error(
        "PostgreSQL (pid %d) still runs %.1fs after SIGQUIT: giving up; stop it by hand",
        pid,
        immediate_grace,
    )
    return False


def _signal(pid: int, sig: signal.Signals) -> bool:
    """Send `sig`; False when the process is gone already (PermissionError is raised)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


# --- the guard's loop


def fence(protocol: GuardProtocol, data_dir: Path, immediate_grace: float) -> None:
    """The lease is about to expire with no renewal: stop PostgreSQL now."""
    left = protocol.expires - boottime()
    why = (
        f"lease fence: no renewal of the leader key arrived and its lease can expire in {left:.1f}s"
    )
    stop_postgres(data_dir, max(0.0, left), immediate_grace, why)
    protocol.fired()


def watch(
    fd: int,
    protocol: GuardProtocol,
    agent_pid: int,
    data_dir: Path,
    immediate_grace: float,
    clock: Callable[[], float] = boottime,
) -> str:
    """Follow the agent's requests and fence on time until it is gone; returns how it went."""
    next_parent_check = time.monotonic() + PARENT_CHECK_EVERY
    while True:
        stop_at = protocol.stop_at
        if stop_at is not None and clock() >= stop_at:
            if not protocol.expired:
                fence(protocol, data_dir, immediate_grace)
            elif verified_postmaster(data_dir)[0] is not None:
                stop_postgres(
                    data_dir, 0.0, immediate_grace, "PostgreSQL started after its lease expired"
                )
        if stop_at is None:
            timeout = PARENT_CHECK_EVERY
        else:
            timeout = POLL if protocol.expired else min(POLL, stop_at - clock())
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if time.monotonic() >= next_parent_check:
            next_parent_check = time.monotonic() + PARENT_CHECK_EVERY
            if os.getppid() != agent_pid:
                return f"the agent (pid {agent_pid}) is gone: this guard was re-parented"
        if not readable:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError as exc:
            return f"the agent's pipe cannot be read ({exc}): taken as the agent's end"
        if not data:
            return f"end of file on the agent's pipe (pid {agent_pid} closed it or exited)"
        for message in protocol.feed(data):
            log.info("%s", message)


class Stopped(Exception):
    """SIGTERM or SIGINT: the guard leaves, stopping PostgreSQL first if it is armed."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stopped(f"stopped by signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m haagent.watchdog.guard",
        description="haagent's agent-death guard (started by the agent, not by hand).",
    )
    p.add_argument("--data-dir", required=True, type=Path, help="postgresql.data_dir")
    p.add_argument("--agent-pid", type=int, help="the agent's pid (default: the parent's)")
    p.add_argument("--fast-grace", type=float, default=3.0, metavar="SECONDS")
    p.add_argument("--immediate-grace", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--log-file", type=Path, help="also append the log lines here")
    p.add_argument("--log-format", default="%(asctime)s %(levelname)s: %(message)s")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def configure_logging(args: argparse.Namespace) -> None:
    prefix = f"agent-death guard (pid {os.getpid()}): "
    fmt = args.log_format.replace("%(message)s", prefix + "%(message)s")
    if "%(message)s" not in args.log_format:
        fmt += " " + prefix + "%(message)s"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    problem = None
    if args.log_file is not None:
        try:
            handlers.append(logging.handlers.WatchedFileHandler(args.log_file))
        except OSError as exc:
            problem = f"cannot open {args.log_file}, logging to stderr only: {exc}"
    try:
        logging.basicConfig(level=args.log_level, format=fmt, handlers=handlers, force=True)
    except (ValueError, TypeError):
        logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    if problem:
        log.warning("%s", problem)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    agent_pid = args.agent_pid if args.agent_pid is not None else os.getppid()
    configure_logging(args)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    protocol = GuardProtocol()
    log.info(
        "watching agent pid %d for data directory %s (disarmed until it leads)",
        agent_pid,
        args.data_dir,
    )
    # Tell the agent we run, then let go of stdout: the pipe is the only link left.
    with contextlib.suppress(OSError):  # the agent is gone already: seen below
        os.write(1, READY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        if os.getppid() != agent_pid:
            gone = f"the agent (pid {agent_pid}) is gone already"
        else:
            gone = watch(0, protocol, agent_pid, args.data_dir, args.immediate_grace)
    except Stopped as e:
        # Even a `systemctl kill` of the whole unit must not leave an armed primary behind.
        gone = str(e)
    # Decided: a signal now does not leave the job half done.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop, why = protocol.verdict()
    if stop:
        stop_postgres(args.data_dir, args.fast_grace, args.immediate_grace, f"{gone}; {why}")
    else:
        log.info("%s; %s", gone, why)
    return 0


if __name__ == "__main__":
    sys.exit(main())
