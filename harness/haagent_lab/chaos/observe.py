"""What the failure suite watches while it breaks things.

- `Sampler`: every 100 ms asks each node's PostgreSQL, over its unix socket (so a
  cut network does not hide a node), whether it accepts writes.
- `Reader`: a read every 20 ms through HAProxy's read port, like an application.
- The writer is `haagent_lab.lab.workload.Writer` (a row every 20 ms, libpq multi-host).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from haagent_lab.lab.cluster import LAB_PASSWORD, LabNode

SAMPLE_EVERY = 0.1


def socket_dsn(node: LabNode) -> str:
    """The node's PostgreSQL over its unix socket (not subject to network faults)."""
    return (
        f"host={node.base} port={node.pg_port} user=postgres password={LAB_PASSWORD} "
        "dbname=postgres connect_timeout=1"
    )


@dataclass(frozen=True)
class Sample:
    """One 100 ms tick: which nodes accepted writes and which did not answer."""

    at: float  # time.monotonic()
    writable: frozenset[str]
    unreachable: frozenset[str]


@dataclass
class Sampler:
    """Every `interval`: which nodes' PostgreSQL accept writes (persistent connections)."""

    nodes: Sequence[LabNode]
    interval: float = SAMPLE_EVERY
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="writable-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reading the samples

    def overlaps(self) -> list[Sample]:
        """Samples in which more than one node accepted writes (split brain)."""
        return [s for s in self.samples if len(s.writable) > 1]

    def seen(self, writable: set[str], times: int = 3) -> bool:
        """True once exactly `writable` accepted writes in at least `times` samples."""
        return sum(1 for s in self.samples if s.writable == writable) >= times

    def writable_times(self, name: str, after: float = 0.0) -> list[float]:
        return [s.at for s in self.samples if s.at >= after and name in s.writable]

    def first_writable(self, name: str, after: float) -> float | None:
        return next(iter(self.writable_times(name, after)), None)

    def last_writable(self, name: str) -> float | None:
        return max(self.writable_times(name), default=None)

    def changes(self, since: float) -> str:
        """Each change of the writable set, timed from `since` (for failure messages)."""
        lines: list[str] = []
        previous: frozenset[str] | None = None
        for s in self.samples:
            if s.writable != previous:
                lines.append(f"{s.at - since:+.2f}s {sorted(s.writable)}")
                previous = s.writable
        return "\n".join(lines)

    def _ask(self, node: LabNode, conns: dict[str, psycopg.Connection[Any] | None]) -> bool | None:
        conn = conns.get(node.name)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(
                    socket_dsn(node), autocommit=True, options="-c statement_timeout=1000"
                )
                conns[node.name] = conn
            row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
            return bool(row is not None and row[0] is True)
        except psycopg.Error:
            if conn is not None:
                conn.close()
            conns[node.name] = None
            return None

    def _run(self) -> None:
        conns: dict[str, psycopg.Connection[Any] | None] = {}
        while not self._stop.is_set():
            started = time.monotonic()
            writable: set[str] = set()
            unreachable: set[str] = set()
            for node in self.nodes:
                answer = self._ask(node, conns)
                if answer is None:
                    unreachable.add(node.name)
                elif answer:
                    writable.add(node.name)
            self.samples.append(Sample(started, frozenset(writable), frozenset(unreachable)))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        for conn in conns.values():
            if conn is not None:
                conn.close()


@dataclass
class Reader:
    """A read every `interval` through `dsn` (HAProxy's read port); records successes."""

    dsn: str
    query: str = "SELECT 1"
    interval: float = 0.02
    ok: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute(self.query).fetchone()
                self.ok.append(time.monotonic())
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        if conn is not None:
            conn.close()


def longest_gap(times: Sequence[float], start: float, end: float) -> float:
    """The longest stretch within [start, end] with no event (the edges count as gaps too)."""
    inside = [t for t in times if start <= t <= end]
    points = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(points)), default=end - start)
