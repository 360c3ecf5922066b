"""Lease fence benchmark: how long the guard's fast shutdown takes under write load.

The guard stops PostgreSQL `margin` seconds before the leader key's lease can expire
(`haagent/config/timing.py`: 2.5 s at ttl 10 / loop_wait 2 / retry_timeout 3, 5 s at
Patroni's 30/10/10).  Writes stop the moment the fast shutdown begins (every backend
is terminated); the margin is what the shutdown has to finish, so that the replicas
have all WAL before one of them may be promoted.  This measures, per round on a fresh
PostgreSQL 15 under write load (4 clients updating a 200,000-row table, fsync on):

- wake: from the fence's deadline to the guard's SIGINT (its 50 ms clock polling);
- last write: from the deadline to the last acknowledged write;
- shutdown: from the deadline to the postmaster's exit.

Run as root or as the postgres OS user:

    .venv/bin/python bench/fence.py [--rounds 10] [--margin 1.0] [--json FILE]

A measurement, not a test: it prints figures and never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from haagent.watchdog.guard import boottime
from haagent.watchdog.guard_client import GUARD_SCRIPT, AgentDeathGuard

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CLIENTS = 4
ROWS = 200_000


@dataclass(frozen=True)
class Round:
    wake: float
    last_write: float
    shutdown: float
    acknowledged: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    data = base / "data"
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={base}",
         "-c", "shared_buffers=128MB", "-c", "max_wal_size=1GB"],
        stdout=subprocess.DEVNULL,
        stderr=(base / "postgres.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2"
    for _ in range(300):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.Error:
            time.sleep(0.05)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v bigint)")
        conn.execute(f"INSERT INTO t SELECT g, 0 FROM generate_series(1, {ROWS}) g")
    return process, dsn


def writers(dsn: str, stop: threading.Event, acked: list[float]) -> list[threading.Thread]:
    def run(seed: int) -> None:
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error:
            return
        n = seed
        while not stop.is_set():
            n = (n * 7919 + 13) % ROWS + 1
            try:
                conn.execute("UPDATE t SET v = v + 1 WHERE id = %s", (n,))
            except psycopg.Error:
                return
            acked.append(boottime())

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    return threads


async def one_round(base: Path, margin: float) -> Round:
    process, dsn = start_postgres(base)
    stop, acked = threading.Event(), []
    threads = writers(dsn, stop, acked)
    await asyncio.sleep(2.0)  # dirty some buffers
    argv = [sys.executable, "-I", "-S", str(GUARD_SCRIPT), "--data-dir", str(base / "data")]
    argv += ["--agent-pid", str(os.getpid()), "--log-file", str(base / "guard.log")]
    guard = await AgentDeathGuard.start(argv)
    stop_at = boottime() + 0.5
    guard.hold(stop_at + margin, margin)
    while process.poll() is None:  # noqa: ASYNC110 (a child process, polled finely)
        await asyncio.sleep(0.002)
    exited = boottime()
    stop.set()
    for thread in threads:
        thread.join(5)
    await guard.close()
    log = (base / "guard.log").read_text()
    signalled = next((line for line in log.splitlines() if "fast shutdown (SIGINT)" in line), None)
    wake = float("nan")
    if signalled is not None:
        # The guard's log line carries the wall clock; compare it with ours.
        stamp = signalled.split(" ")[0] + " " + signalled.split(" ")[1]
        wall = time.mktime(time.strptime(stamp.split(",")[0], "%Y-%m-%d %H:%M:%S"))
        wall += int(stamp.split(",")[1]) / 1000
        wake = wall - (time.time() - (boottime() - stop_at))
    last = max((t for t in acked), default=stop_at)
    shutil.rmtree(base / "data", ignore_errors=True)
    return Round(wake, last - stop_at, exited - stop_at, len(acked))


def summary(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return f"p50 {statistics.median(values) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   " \
        f"max {values[-1] * 1000:7.1f} ms"  # fmt: skip


def as_postgres() -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("postgres")
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--margin", type=float, default=1.0, help="seconds before the expiry")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    as_postgres()
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="haagent-fence-", dir="/var/tmp") as tmp:
        for i in range(args.rounds):
            base = Path(tmp) / f"r{i}"
            base.mkdir()
            rounds.append(asyncio.run(one_round(base, args.margin)))
            r = rounds[-1]
            print(
                f"round {i + 1}: wake {r.wake * 1000:6.1f} ms, last write "
                f"{r.last_write * 1000:6.1f} ms, shutdown {r.shutdown * 1000:7.1f} ms "
                f"({r.acknowledged} writes)",
                flush=True,
            )
    print()
    print(f"fence deadline -> guard's SIGINT:   {summary([r.wake for r in rounds])}")
    print(f"fence deadline -> last write acked: {summary([r.last_write for r in rounds])}")
    print(f"fence deadline -> postmaster gone:  {summary([r.shutdown for r in rounds])}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rounds], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
