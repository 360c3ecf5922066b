"""A bare PostgreSQL 15 instance for tests: initdb, start, stop, by pid.

This is test scaffolding only; the agent's own PostgreSQL management lives in
`haagent.postgres`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from haagent_lab.lab import processes
from haagent_lab.lab.processes import Process

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresInstance:
    data_dir: Path
    host: str
    port: int
    socket_dir: Path
    log_path: Path
    process: Process | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname=postgres connect_timeout=3"

    def initdb(self) -> None:
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def start(self, timeout: float = 30.0) -> None:
        self.process = processes.start(
            "postgres",
            [str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-c", f"listen_addresses={self.host}",
             "-c", f"unix_socket_directories={self.socket_dir}", "-c", "fsync=off"],
            self.log_path,
        )  # fmt: skip
        processes.wait_for(self.accepts_connections, "PostgreSQL to accept", timeout, self.process)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown.
        if self.process is not None:
            self.process.stop(timeout=30, sig=2)
