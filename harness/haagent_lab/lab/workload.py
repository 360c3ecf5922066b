"""A writer for failure tests and benchmarks: a row every 20 ms, reconnecting through libpq.

It connects with a multi-host connection string and `target_session_attrs=read-write`,
so libpq itself finds the current primary, and records every acknowledged
write, so a test can measure write downtime and check for lost writes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from haagent.config.model import Address

# A client that notices a dead or cut-off server within about two seconds: a connection
# attempt gives up after 1 s, unacknowledged data after 2 s, an idle connection after 3 s.
CLIENT_TIMEOUTS = (
    "connect_timeout=1 tcp_user_timeout=2000 keepalives=1 keepalives_idle=1 "
    "keepalives_interval=1 keepalives_count=2"
)


def multi_host_dsn(addresses: Sequence[Address], user: str, password: str) -> str:
    hosts = ",".join(a.host for a in addresses)
    ports = ",".join(str(a.port) for a in addresses)
    return (
        f"host={hosts} port={ports} user={user} password={password} dbname=postgres "
        f"target_session_attrs=read-write {CLIENT_TIMEOUTS}"
    )


@dataclass
class Writer:
    dsn: str
    interval: float = 0.02
    table: str = "haagent_writer"
    acked: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def prepare(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")

    def start(self) -> None:
        self.prepare()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        next_id = int(time.time() * 1000) * 1000
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (next_id,))
                self.acked.append((next_id, time.monotonic()))
                next_id += 1
            except psycopg.Error:
                # The outcome is unknown (a commit can succeed and its answer be lost, such
                # as one waiting for a synchronous standby when the connection ends): never
                # reuse the id, or the retry fails on a duplicate key for ever.
                next_id += 1
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        if conn is not None:
            conn.close()

    def downtime_since(self, t0: float) -> float:
        """The longest gap between acknowledged writes after monotonic time `t0`."""
        times = [t for _, t in self.acked if t >= t0 - 1.0]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return max(gaps, default=0.0)

    def lost(self, dsn: str) -> list[int]:
        """Acknowledged ids missing from the table now (ask the current primary)."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(f"SELECT id FROM {self.table}").fetchall()
        present = {int(str(r[0])) for r in rows}
        return [i for i, _ in self.acked if i not in present]
