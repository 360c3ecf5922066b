"""The libpq settings of a PostgreSQL user's connections: TLS client certificates and the like.

`postgresql.authentication.<user>` may carry libpq keys next to the user name
(`sslmode`, `sslcert`, `sslkey`, `sslrootcert`, ...).  Every connection made as
that user uses them: the agent's own session (superuser), post_bootstrap's
connection string (superuser), pg_basebackup, the walreceiver's
primary_conninfo and the leader's timeline check (replication), pg_rewind and its
source check (rewind).

A key the server's libpq does not know makes libpq refuse the whole connection
string, so, as Patroni does, keys newer than the server's version are left out
(with one warning, by the caller).  `sslpassword` is a secret: it never goes on
a command line.  Tools get it through a service file of their own, made for the
run and removed after it (`tool_connection`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from haagent.config.model import Credentials

# The first version (PG_VERSION_NUM) whose libpq knows the key; older ones know them all.
SINCE = {
    "gssencmode": 120000,
    "channel_binding": 130000,
    "sslpassword": 130000,
    "sslcrldir": 140000,
    "sslnegotiation": 170000,
}
SECRETS = frozenset({"sslpassword"})
SERVICE = "haagent"


def options_for(cred: Credentials, server_version: int | None) -> tuple[dict[str, str], list[str]]:
    """The libpq keys of `cred` a server of `server_version` knows, and the ones left out."""
    options: dict[str, str] = {}
    left_out: list[str] = []
    for key, value in cred.libpq:
        if server_version is not None and server_version < SINCE.get(key, 0):
            left_out.append(key)
        else:
            options[key] = value
    return options, left_out


@dataclass(frozen=True)
class ToolConnection:
    """What a tool gets to connect: the keys for its connection string (no secret among
    them) and the environment that finds the rest (a service file), if any."""

    options: dict[str, str]
    env: dict[str, str]


@contextlib.contextmanager
def tool_connection(options: Mapping[str, str]) -> Iterator[ToolConnection]:
    """`options` split for a tool's command line: secrets go into a service file (mode
    0600, in a private directory) that exists while the context is open."""
    public = {k: v for k, v in options.items() if k not in SECRETS}
    secret = {k: v for k, v in options.items() if k in SECRETS}
    if not secret:
        yield ToolConnection(public, {})
        return
    with tempfile.TemporaryDirectory(prefix="haagent-libpq-") as tmp:
        path = Path(tmp) / "pg_service.conf"
        lines = [f"[{SERVICE}]", *(f"{k}={_service_value(k, v)}" for k, v in secret.items())]
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n")
        yield ToolConnection({**public, "service": SERVICE}, {"PGSERVICEFILE": str(path)})


def _service_value(key: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"postgresql.authentication: {key} must be one line")
    return value
