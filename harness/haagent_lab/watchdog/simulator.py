"""WATCHDOG SIMULATOR: testing only, not for production.

A process that plays the kernel watchdog's part for one node of a test cluster,
for the `testing` driver (`testing_driver.py` has the protocol).  The test harness or
the lab starts it, never the agent: the agent is what gets frozen or killed.

    python -m haagent_lab.watchdog.simulator --socket PATH [--node NAME]
        [--kill-peer] [--kill-pid PID]... [--kill-pidfile FILE]... [--pgdata DIR]...
        [--events FILE] [--default-timeout 60] [--min-timeout 1] [--max-timeout 65535]

As with the kernel: a connection starts the timer (`--default-timeout`), every
request except GETTIMEOUT/GETSUPPORT/CLOSE is a keepalive, and the timer stops
only when the client wrote `V` before it closed; a close or a dropped connection
without it leaves the timer running.  When the timer expires the simulator
"resets the node": it SIGSTOPs then SIGKILLs the connected client (with
`--kill-peer`), the given pids, the pids named by the pid files and the
postmaster of each data directory (its first postmaster.pid line), with all
their descendants.  It never kills itself nor the process that started it.

Every event is logged to stdout with a timestamp; each lifecycle event (open,
magic_close, unexpected_close, reset, busy) is also appended as a JSON line to
`--events`.  The socket appears (atomically, by rename) once it accepts clients.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from haagent.watchdog.driver import WDIOF_KEEPALIVEPING, WDIOF_MAGICCLOSE, WDIOF_SETTIMEOUT
from haagent_lab.watchdog import proctree

log = logging.getLogger("haagent_lab.watchdog.simulator")

IDENTITY = "haagent watchdog simulator"
OPTIONS = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING


@dataclass
class SimulatedWatchdog:
    """The kernel's watchdog state machine, with time passed in."""

    timeout: int = 60
    min_timeout: int = 1
    max_timeout: int = 65535
    armed: bool = False
    allow_release: bool = False
    last_ping: float = 0.0

    @property
    def deadline(self) -> float:
        return self.last_ping + self.timeout

    def open(self, now: float) -> None:
        self.armed = True
        self.allow_release = False
        self.last_ping = now

    def handle(self, line: str, now: float) -> str:
        """The reply to one request line."""
        command, _, arg = line.strip().partition(" ")
        if command == "GETSUPPORT":
            return f"OK {OPTIONS} 0 {IDENTITY}"
        if command == "GETTIMEOUT":
            return f"OK {self.timeout}"
        if command == "CLOSE":
            return "OK"
        if command == "SETTIMEOUT":
            try:
                seconds = int(arg)
            except ValueError:
                return f"ERR EINVAL not a number of seconds: {arg!r}"
            if not self.min_timeout <= seconds <= self.max_timeout:
                return (
                    f"ERR EINVAL timeout {seconds}s outside {self.min_timeout}..{self.max_timeout}s"
                )
            self.timeout = seconds
            self.last_ping = now
            return f"OK {seconds}"
        if command in ("KEEPALIVE", "V"):
            # Like write(2) to the device: a ping that sets or clears the magic flag.
            self.allow_release = command == "V"
            self.last_ping = now
            return "OK"
        return f"ERR EINVAL unknown request {command!r}"

    def release(self) -> bool:
        """The client closed: True when the timer stopped (magic close)."""
        if self.allow_release:
            self.armed = False
        self.allow_release = False
        return not self.armed

    def expired(self, now: float) -> bool:
        return self.armed and now >= self.deadline


@dataclass
class Targets:
    """What a reset of this node kills."""

    pids: tuple[int, ...] = ()
    pidfiles: tuple[Path, ...] = ()
    data_dirs: tuple[Path, ...] = ()
    peer: tuple[int, int] | None = None  # (pid, starttime) of the connected client
    kill_peer: bool = False
    exclude: set[int] = field(default_factory=set)

    def resolve(self) -> list[int]:
        roots = list(self.pids)
        roots += [p for p in map(proctree.read_pidfile, self.pidfiles) if p is not None]
        roots += [p for p in map(proctree.postmaster_pid, self.data_dirs) if p is not None]
        if self.kill_peer and self.peer is not None:
            pid, started = self.peer
            if proctree.start_time(pid) == started:  # still the same process
                roots.append(pid)
        return [p for p in proctree.with_descendants(roots) if p not in self.exclude]


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.socket_path = Path(args.socket)
        self.node = args.node or self.socket_path.name
        self.events_path = Path(args.events) if args.events else None
        self.state = SimulatedWatchdog(args.default_timeout, args.min_timeout, args.max_timeout)
        self.targets = Targets(
            pids=tuple(args.kill_pid),
            pidfiles=tuple(Path(p) for p in args.kill_pidfile),
            data_dirs=tuple(Path(p) for p in args.pgdata),
            kill_peer=args.kill_peer,
            exclude={os.getpid(), os.getppid()},
        )
        self.selector = selectors.DefaultSelector()
        self.client: socket.socket | None = None
        self.buffer = b""

    def event(self, name: str, **details: Any) -> None:
        record = {"event": name, "node": self.node, "time": time.time(), **details}
        record["monotonic"] = time.monotonic()
        if self.events_path is not None:
            with self.events_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def serve(self) -> None:
        tmp = self.socket_path.with_name(self.socket_path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(tmp))
        listener.listen(4)
        os.replace(tmp, self.socket_path)
        self.selector.register(listener, selectors.EVENT_READ)
        log.info("listening on %s (testing watchdog: not for production)", self.socket_path)
        try:
            while True:
                now = time.monotonic()
                wait = max(0.0, self.state.deadline - now) if self.state.armed else None
                for key, _ in self.selector.select(wait):
                    if key.fileobj is listener:
                        self.accept(listener)
                    else:
                        self.read()
                if self.state.expired(time.monotonic()):
                    self.reset()
        finally:
            self.socket_path.unlink(missing_ok=True)
            listener.close()

    def accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid = int.from_bytes(creds[:4], sys.byteorder)
        if self.client is not None:
            log.warning("pid %d refused: the watchdog is already open (EBUSY)", pid)
            self.event("busy", pid=pid)
            conn.sendall(b"ERR EBUSY the watchdog is already open\n")
            conn.close()
            return
        self.client, self.buffer = conn, b""
        started = proctree.start_time(pid)
        self.targets.peer = None if started is None else (pid, started)
        self.state.open(time.monotonic())
        self.selector.register(conn, selectors.EVENT_READ)
        log.info("opened by pid %d: armed, timeout %ds", pid, self.state.timeout)
        self.event("open", pid=pid, timeout=self.state.timeout)
        conn.sendall(f"OK {IDENTITY} {self.state.timeout}\n".encode())

    def read(self) -> None:
        assert self.client is not None
        try:
            data = self.client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.disconnect()
            return
        self.buffer += data
        while b"\n" in self.buffer and self.client is not None:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            reply = self.state.handle(line, time.monotonic())
            log.info("%s -> %s", line, reply)
            try:
                self.client.sendall(reply.encode() + b"\n")
            except OSError:
                self.disconnect()
                return
            if line == "CLOSE":
                self.disconnect()

    def disconnect(self) -> None:
        if self.client is None:
            return
        self.selector.unregister(self.client)
        self.client.close()
        self.client = None
        if self.state.release():
            log.info("closed with the magic character: disarmed")
            self.event("magic_close")
        else:
            left = self.state.deadline - time.monotonic()
            log.warning("unexpected close, not stopping the watchdog: reset in %.1fs", left)
            self.event("unexpected_close", timeout=self.state.timeout)

    def reset(self) -> None:
        now = time.monotonic()
        silent = now - self.state.last_ping
        self.state.armed = False
        if self.client is not None:
            self.selector.unregister(self.client)
            self.client.close()
            self.client = None
        pids = self.targets.resolve()
        killed = proctree.kill_all(pids)
        log.warning(
            "TIMEOUT: no keepalive for %.2fs (timeout %ds): node reset, SIGKILLed pids %s",
            silent,
            self.state.timeout,
            killed,
        )
        self.event("reset", timeout=self.state.timeout, silent=silent, killed=killed)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m haagent_lab.watchdog.simulator",
        description="Watchdog simulator for tests: not for production.",
    )
    p.add_argument("--socket", required=True, help="unix socket path (= watchdog.device)")
    p.add_argument("--node", help="node name for the log and the events")
    p.add_argument("--kill-peer", action="store_true", help="on reset, kill the client too")
    p.add_argument("--kill-pid", type=int, action="append", default=[], metavar="PID")
    p.add_argument("--kill-pidfile", action="append", default=[], metavar="FILE")
    p.add_argument("--pgdata", action="append", default=[], metavar="DIR")
    p.add_argument("--events", help="append a JSON line per lifecycle event here")
    p.add_argument("--default-timeout", type=int, default=60)
    p.add_argument("--min-timeout", type=int, default=1)
    p.add_argument("--max-timeout", type=int, default=65535)
    return p.parse_args(argv)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format=f"%(asctime)s.%(msecs)03d watchdog-simulator[{args.node or '-'}] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    Simulator(args).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
