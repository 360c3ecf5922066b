"""The agent-death guard and lease fence: a process that stops the local PostgreSQL when
its agent can no longer prove that it holds the leader key.

Two failures leave a primary running with nobody renewing its leader key; once the
key's ttl runs out a replica is promoted, and two primaries accept writes:

- the agent dies (SIGKILL, a crash): the kernel closes its end of our pipe;
- the agent stalls (SIGSTOP, CPU starvation, swap, a call that blocks its event loop,
  a long CHECKPOINT in its way): it is alive but renews nothing.

The guard covers both without depending on the agent's event loop.

    python3 -I -S .../haagent/watchdog/run_guard.py --data-dir DIR [--agent-pid PID]
        [--fast-grace 3] [--immediate-grace 5]
        [--log-file FILE] [--log-format FMT] [--log-level LEVEL]

It runs on the standard library alone (`-I -S`: nothing from site-packages, no PYTHON*
variables), imported from its .pyc by `run_guard.py` (this file also runs as a script),
and imports only small modules (no logging, argparse, dataclasses or pathlib: about
9.5 MB resident); `ssl`, `http.client` and `json` are imported only
to revoke the lease, once PostgreSQL is stopped.

The agent starts one guard at startup (`guard_client.py`), in its own session, with
its stdin a pipe from the agent and no other descriptor of the agent's.  The guard
answers `READY` on stdout once, then reads lines from the pipe:

- `LEASE <expires> <margin> [<lease id>]`: this agent holds the leader key and
  PostgreSQL may run as a primary until `expires` (seconds on CLOCK_BOOTTIME, a clock
  that keeps counting through a suspend); sent after every renewal of the key.  If
  no later LEASE arrives, the guard starts a fast shutdown at `expires - margin` (new
  connections refused, every backend terminated: no write is acknowledged after this),
  and an immediate
  one at `expires` if PostgreSQL still runs.  A LEASE with `margin >= expires - now`
  is "stop now": the agent lost its lease.
- `DISARM`: PostgreSQL is not a primary (a replica, stopped, or maintenance mode).
- `ETCD <json>`: how to reach etcd (`endpoints`, and `cacert`, `cert`, `key`, `user`,
  `password` when set), sent once after `READY`.  Once the guard has stopped
  PostgreSQL and no process of its data directory is left, it revokes the lease it
  was last given: the leader key goes at once and a replica takes over without
  waiting for the ttl (never while PostgreSQL may still accept a write).

When the pipe reaches end of file (the agent exited, however it exited), or the guard
finds itself re-parented (the agent is gone but a stray copy of the pipe is open):

- disarmed: the guard exits, PostgreSQL untouched (a clean exit disarms first);
- armed: the guard stops PostgreSQL at once (fast shutdown, immediate after
  `--fast-grace` seconds) and exits.

Stopping PostgreSQL: the guard reads the postmaster's pid from `DIR/postmaster.pid`,
checks that `/proc/PID/cmdline` is a postgres server for `DIR` (a recycled pid is left
alone), sends SIGINT (fast shutdown) and, past the grace, SIGQUIT (immediate).

Every decision is one log line with its reason, on stderr (the agent's log) and in
`--log-file` when given, always after the signal it announces.  The guard needs no
configuration file; etcd only to revoke a lease it was told about.
"""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import time

# Not `typing`, `collections.abc` or `contextlib`: each pulls in more modules than the rest
# of the guard together (mypy still reads the annotations below).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType

LEASE = "LEASE"
DISARM = "DISARM"
ETCD = "ETCD"
READY = b"READY\n"
SERVER_NAMES = ("postgres", "postmaster")
POLL = 0.05  # while armed, the clock is read at least this often
PARENT_CHECK_EVERY = 1.0
MAX_LINE = 8192
REVOKE_TIMEOUT = 2.0  # seconds per etcd endpoint
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


# --- one log line per decision, in the agent's format (no logging module: it is big)


class Log:
    """Lines formatted like the agent's (`log.format`, with `%(asctime)s`, `%(levelname)s`,
    `%(message)s`, `%(name)s`...), to stderr and, when given, appended to a file."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s: %(message)s",
                 level: str = "INFO", path: str | None = None) -> None:  # fmt: skip
        self.prefix = f"agent-death guard (pid {os.getpid()}): "
        self.fmt = fmt if "%(message)s" in fmt else fmt + " %(message)s"
        self.level = LEVELS.get(level.upper(), 20)
        self.path = path
        self.lines: list[str] = []  # what was logged (for tests)

    def _line(self, level: str, message: str) -> str:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        fields = {
            "asctime": f"{stamp},{int(now % 1 * 1000):03d}",
            "levelname": level,
            "message": self.prefix + message,
            "name": "haagent.guard",
            "process": os.getpid(),
            "created": now,
        }
        try:
            return self.fmt % fields
        except (KeyError, ValueError, TypeError):
            return f"{fields['asctime']} {level}: {fields['message']}"

    def log(self, level: str, message: str) -> None:
        if LEVELS.get(level, 20) < self.level:
            return
        line = self._line(level, message)
        self.lines.append(line)
        data = (line + "\n").encode(errors="replace")
        for fd in self._fds():
            try:  # noqa: SIM105 (contextlib is not imported, see above)
                os.write(fd, data)
            except OSError:
                pass
            if fd != 2:
                os.close(fd)

    def _fds(self) -> list[int]:
        fds = [2]
        if self.path is not None:
            # Opened for each line: a rotated file is followed, as WatchedFileHandler does.
            try:  # noqa: SIM105
                fds.append(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
            except OSError:
                pass
        return fds

    def info(self, message: str) -> None:
        self.log("INFO", message)

    def warning(self, message: str) -> None:
        self.log("WARNING", message)

    def error(self, message: str) -> None:
        self.log("ERROR", message)


log = Log()


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


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def postmaster_mismatch(
    cmdline: bytes, data_dir: str | os.PathLike[str], cwd: str | None
) -> str | None:
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
        return f"it is the PostgreSQL server of {named}, not of {os.fspath(data_dir)}"
    if cwd is not None and _same_path(cwd, data_dir):
        return None
    return f"it is a PostgreSQL server, but not one running in {os.fspath(data_dir)} (cwd {cwd})"


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME: monotonic, and counting through a suspend of the machine."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def parse_lease(line: str) -> tuple[float, float, int | None] | None:
    """`(expires, margin, lease id)` of a `LEASE <expires> <margin> [<id>]` line; None when
    malformed."""
    parts = line.split()
    if len(parts) not in (3, 4) or parts[0] != LEASE:
        return None
    try:
        expires, margin = float(parts[1]), float(parts[2])
        lease = int(parts[3]) if len(parts) == 4 else None
    except ValueError:
        return None
    if not (math.isfinite(expires) and math.isfinite(margin)) or margin < 0:
        return None
    if lease is not None and not 0 < lease < 1 << 63:
        return None
    return expires, margin, lease


def parse_etcd(line: str) -> dict[str, object] | None:
    """The etcd access of an `ETCD <json>` line (endpoints and optional TLS and credentials)."""
    import json  # only when the agent says how to reach etcd

    try:
        data = json.loads(line[len(ETCD) :].strip())
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    endpoints = data.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return None
    if not all(isinstance(e, str) and e.startswith(("http://", "https://")) for e in endpoints):
        return None
    for key in ("cacert", "cert", "key", "user", "password"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return None
    return data


class GuardProtocol:
    """The guard's state, from the lines the agent wrote so far.

    Armed: PostgreSQL may run as a primary until `expires` (CLOCK_BOOTTIME); the
    fence stops it from `expires - margin` on.  Expired: the fence fired and no newer
    lease came; any PostgreSQL that appears is stopped too (a start already under way
    when the lease ran out must not come up as a primary).
    """

    def __init__(self) -> None:
        self.armed = False
        self.expires = 0.0
        self.margin = 0.0
        self.expired = False
        self.lease: int | None = None  # the etcd lease the leader key is on
        self.etcd: dict[str, object] | None = None
        self._pending = b""
        self._overflowed = False

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
            line = raw.decode("utf-8", "replace").strip()
            if line == DISARM:
                if self.armed:
                    self.armed = self.expired = False
                    messages.append("disarmed: PostgreSQL is not a primary; it is left alone")
                continue
            if line.startswith(ETCD + " "):
                etcd = parse_etcd(line)
                if etcd is None:
                    messages.append("ignoring a malformed ETCD request")
                else:
                    self.etcd = etcd
                continue
            lease = parse_lease(line)
            if lease is not None:
                if not self.armed:
                    messages.append(
                        f"armed: the agent holds the leader key; PostgreSQL is stopped "
                        f"{lease[1]:.1f}s before its lease can expire unless renewed, and at "
                        "once if the agent dies"
                    )
                self.armed, (self.expires, self.margin, self.lease) = True, lease
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
                "renews the key, so this primary stops now (then its lease is revoked, and a "
                "replica takes over at once)"
            )
        return False, "not armed (the agent does not lead, or stops cleanly): PostgreSQL left alone"


# --- processes


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def process_alive(pid: int) -> bool:
    """`pid` runs (a zombie, which nobody may have reaped yet, does not)."""
    try:
        text = _read(f"/proc/{pid}/stat").decode(errors="replace")
    except OSError:
        return False
    fields = text[text.rfind(")") + 2 :].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def read_cmdline(pid: int) -> bytes:
    try:
        return _read(f"/proc/{pid}/cmdline")
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


def verified_postmaster(data_dir: str | os.PathLike[str]) -> tuple[int | None, str]:
    """`(pid, "")` of the postmaster of `data_dir`, or `(None, why there is none to stop)`."""
    pid_file = os.path.join(data_dir, "postmaster.pid")
    try:
        pid = parse_postmaster_pid(_read(pid_file).decode(errors="replace"))
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


def data_dir_processes(data_dir: str | os.PathLike[str]) -> list[int]:
    """Processes working in `data_dir` (PostgreSQL's backends run there): any of them may
    still hold a connection that writes."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and process_alive(int(entry)):
            cwd = read_cwd(int(entry))
            if cwd is not None and _same_path(cwd, data_dir):
                found.append(int(entry))
    return found


def stop_postgres(
    data_dir: str | os.PathLike[str], fast_grace: float, immediate_grace: float, why: str = ""
) -> bool:
    """Fast shutdown, then immediate; True when no postmaster of `data_dir` runs any more.

    The signal goes out before anything is logged: a log that blocks (a stalled journal or
    disk, likely in the very stall the guard exists for) must not delay it."""
    pid, found = verified_postmaster(data_dir)
    if pid is None:
        log.warning(f"{why}: nothing to stop: {found}" if why else f"nothing to stop: {found}")
        return True
    started = time.monotonic()
    try:
        sent = _signal(pid, signal.SIGINT)
        log.warning(
            f"{why + ': ' if why else ''}fast shutdown (SIGINT) sent to PostgreSQL "
            f"(postmaster pid {pid})"
        )
        if not sent or wait_gone(pid, fast_grace):
            log.warning(f"PostgreSQL stopped (fast shutdown) in {time.monotonic() - started:.2f}s")
            return True
        # Still the same server?  (A running process keeps its pid, but check anyway.)
        again, found = verified_postmaster(data_dir)
        if again != pid:
            log.warning(f"postmaster pid {pid} gone or replaced, not escalating: {found}")
            return not process_alive(pid)
        sent = _signal(pid, signal.SIGQUIT)
        log.warning(
            f"PostgreSQL (pid {pid}) still ran {fast_grace:.1f}s after SIGINT: immediate "
            "shutdown (SIGQUIT) sent"
        )
        if not sent or wait_gone(pid, immediate_grace):
            took = time.monotonic() - started
            log.warning(f"PostgreSQL stopped (immediate shutdown) in {took:.2f}s")
            return True
    except PermissionError as exc:
        log.error(f"cannot signal PostgreSQL (pid {pid}): {exc}; stop it by hand")
        return False
    log.error(
        f"PostgreSQL (pid {pid}) still runs {immediate_grace:.1f}s after SIGQUIT: giving up; "
        "stop it by hand"
    )
    return False


def _signal(pid: int, sig: signal.Signals) -> bool:
    """Send `sig`; False when the process is gone already (PermissionError is raised)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


# --- revoking the lease once PostgreSQL is stopped


def _etcd_call(etcd: dict[str, object], path: str, body: dict[str, object]) -> str:
    """POST to etcd's JSON gateway on each endpoint in turn; the first answer's body."""
    import http.client
    import json
    import ssl
    from urllib.parse import urlsplit

    errors = []
    headers = {"Content-Type": "application/json"}
    token = etcd.get("token")
    if isinstance(token, str):
        headers["Authorization"] = token
    for endpoint in etcd["endpoints"]:  # type: ignore[attr-defined]
        url = urlsplit(str(endpoint))
        try:
            if url.scheme == "https":
                context = ssl.create_default_context(cafile=etcd.get("cacert"))  # type: ignore[arg-type]
                if etcd.get("cert"):
                    context.load_cert_chain(etcd["cert"], etcd.get("key"))  # type: ignore[arg-type]
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    url.hostname or "", url.port, timeout=REVOKE_TIMEOUT, context=context
                )
            else:
                conn = http.client.HTTPConnection(
                    url.hostname or "", url.port, timeout=REVOKE_TIMEOUT
                )
            conn.request("POST", path, json.dumps(body), headers)
            answer = conn.getresponse()
            text = answer.read(65536).decode(errors="replace")
            conn.close()
            if answer.status == 200:
                return text
            errors.append(f"{endpoint}: {answer.status} {text[:120]}")
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"{endpoint}: {exc}")
    raise OSError("; ".join(errors))


def revoke_lease(etcd: dict[str, object] | None, lease: int | None) -> None:
    """Revoke the agent's lease: the leader key (and its member key) go at once."""
    if etcd is None or lease is None:
        return
    import json

    try:
        if etcd.get("user"):
            auth = {"name": etcd["user"], "password": etcd.get("password") or ""}
            answer = json.loads(_etcd_call(etcd, "/v3/auth/authenticate", auth))
            etcd = {**etcd, "token": answer.get("token")}
        _etcd_call(etcd, "/v3/lease/revoke", {"ID": str(lease)})
    except (OSError, ValueError, AttributeError) as exc:
        log.warning(f"could not revoke lease {lease:x}: {exc}; the leader key expires by itself")
        return
    log.warning(
        f"revoked lease {lease:x}: PostgreSQL is stopped, so the leader key goes now and a "
        "replica takes over without waiting for the ttl"
    )


def stop_and_revoke(
    protocol: GuardProtocol,
    data_dir: str | os.PathLike[str],
    fast_grace: float,
    immediate_grace: float,
    why: str,
) -> None:
    """Stop PostgreSQL; once no process of its data directory is left, revoke the lease."""
    stopped = stop_postgres(data_dir, fast_grace, immediate_grace, why)
    if not stopped:
        return
    deadline = time.monotonic() + immediate_grace
    while data_dir_processes(data_dir):  # the postmaster's children exit after it
        if time.monotonic() >= deadline:
            log.warning("processes are still working in the data directory: lease kept")
            return
        time.sleep(POLL)
    revoke_lease(protocol.etcd, protocol.lease)
    protocol.lease = None


# --- the guard's loop


def fence(
    protocol: GuardProtocol, data_dir: str | os.PathLike[str], immediate_grace: float
) -> None:
    """The lease is about to expire with no renewal: stop PostgreSQL now."""
    left = protocol.expires - boottime()
    why = (
        f"lease fence: no renewal of the leader key arrived and its lease can expire in {left:.1f}s"
    )
    stop_and_revoke(protocol, data_dir, max(0.0, left), immediate_grace, why)
    protocol.fired()


def watch(
    fd: int,
    protocol: GuardProtocol,
    agent_pid: int,
    data_dir: str | os.PathLike[str],
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
            log.info(message)


class Stopped(Exception):
    """SIGTERM or SIGINT: the guard leaves, stopping PostgreSQL first if it is armed."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stopped(f"stopped by signal {signum}")


class Arguments:
    """The command line (no argparse: the guard stays small)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.data_dir = ""
        self.agent_pid: int | None = None
        self.fast_grace = 3.0
        self.immediate_grace = 5.0
        self.log_file: str | None = None
        self.log_format = "%(asctime)s %(levelname)s: %(message)s"
        self.log_level = "INFO"
        args = list(argv)
        while args:
            flag = args.pop(0)
            name, _, value = flag.partition("=")
            if not value:
                if not args:
                    raise ValueError(f"{flag} needs a value")
                value = args.pop(0)
            if name == "--data-dir":
                self.data_dir = value
            elif name == "--agent-pid":
                self.agent_pid = int(value)
            elif name == "--fast-grace":
                self.fast_grace = float(value)
            elif name == "--immediate-grace":
                self.immediate_grace = float(value)
            elif name == "--log-file":
                self.log_file = value
            elif name == "--log-format":
                self.log_format = value
            elif name == "--log-level":
                self.log_level = value
            else:
                raise ValueError(f"unknown argument {flag}")
        if not self.data_dir:
            raise ValueError("--data-dir is required")


USAGE = (
    "usage: python3 -I -S run_guard.py --data-dir DIR [--agent-pid PID] [--fast-grace S] "
    "[--immediate-grace S] [--log-file FILE] [--log-format FMT] [--log-level LEVEL]\n"
    "haagent's agent-death guard and lease fence (started by the agent, not by hand)\n"
)


def main(argv: Sequence[str] | None = None) -> int:
    global log
    try:
        args = Arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        sys.stderr.write(f"{USAGE}error: {exc}\n")
        return 2
    agent_pid = args.agent_pid if args.agent_pid is not None else os.getppid()
    log = Log(args.log_format, args.log_level, args.log_file)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    protocol = GuardProtocol()
    log.info(f"watching agent pid {agent_pid} for data directory {args.data_dir} (disarmed "
             "until it leads)")  # fmt: skip
    # Tell the agent we run, then let go of stdout: the pipe is the only link left.
    try:  # noqa: SIM105
        os.write(1, READY)
    except OSError:  # the agent is gone already: seen below
        pass
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
        stop_and_revoke(protocol, args.data_dir, args.fast_grace, args.immediate_grace,
                        f"{gone}; {why}")  # fmt: skip
    else:
        log.info(f"{gone}; {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
