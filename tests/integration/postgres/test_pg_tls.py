"""Client certificates required by PostgreSQL: every connection haagent and its tools make
uses the user's libpq keys (real PostgreSQL 15, certificates made with openssl)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgnodes import Node, Nodes, dynamic, wait_status

from haagent.config.model import BootstrapSettings, Credentials, PostgresqlAuthentication
from haagent.postgres.slots import SlotChanges, SlotSpec
from support.pki import issue, make_ca

pytestmark = pytest.mark.integration
HOSTS = ("127.0.0.11", "127.0.0.12")
# Only TLS with a client certificate whose CN is the user: no password, no plain TCP.
CERT_HBA = (
    "local all all trust",
    "hostssl replication replicator 127.0.0.1/8 cert",
    "hostssl all all 127.0.0.1/8 cert",
)
KEY_PASSPHRASE = "key-passphrase-4"


def tls_auth(pki: Path) -> PostgresqlAuthentication:
    def user(name: str, password: str, passphrase: str | None = None) -> Credentials:
        cert, key = issue(pki, name, name, passphrase=passphrase)
        libpq = [("sslmode", "verify-full"), ("sslcert", str(cert)), ("sslkey", str(key)),
                 ("sslrootcert", str(pki / "ca.crt"))]  # fmt: skip
        if passphrase is not None:
            libpq.append(("sslpassword", passphrase))
        return Credentials(name, password, libpq=tuple(libpq))

    return PostgresqlAuthentication(
        superuser=user("postgres", "su-secret-1"),
        # An encrypted key: its passphrase (sslpassword) must reach pg_basebackup and the
        # walreceiver too.
        replication=user("replicator", "rep-secret-2", KEY_PASSPHRASE),
        rewind=user("rewinder", "rw-secret-3"),
    )


def tls_node(nodes: Nodes, name: str, host: str, pki: Path, auth: PostgresqlAuthentication) -> Node:
    cert, key = issue(pki, f"server-{name}", host, ips=(host,))
    settings = nodes.settings(name, host)
    parameters: dict[str, Any] = {
        **settings.parameters,
        "ssl": True,
        "ssl_cert_file": str(cert),
        "ssl_key_file": str(key),
        "ssl_ca_file": str(pki / "ca.crt"),
    }
    boot = BootstrapSettings(initdb=(("encoding", "UTF8"), "no-sync"), pg_hba=CERT_HBA)
    node = nodes.make(name, host, dyn=dynamic(use_pg_rewind=True), bootstrap=boot,
                      authentication=auth, parameters=parameters, pg_hba=CERT_HBA)  # fmt: skip
    return node


async def local_sql(node: Node, sql: str) -> list[tuple[Any, ...]]:
    """Over the unix socket (trusted), to look at the server from outside haagent."""
    dsn = f"host={node.settings.parameters['unix_socket_directories']} port={node.port} "
    async with await psycopg.AsyncConnection.connect(
        dsn + "user=postgres dbname=postgres", autocommit=True
    ) as conn:
        cur = await conn.execute(sql.encode())
        return list(await cur.fetchall()) if cur.description else []


SSL_SESSIONS = (
    "SELECT a.usename, a.backend_type, s.ssl, s.client_dn FROM pg_stat_activity a "
    "JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL ORDER BY 1, 2"
)


async def test_every_connection_uses_the_users_client_certificate(
    nodes: Nodes, workdir: Path
) -> None:
    pki = make_ca(workdir / "pki")
    auth = tls_auth(pki)
    primary = tls_node(nodes, "node1", HOSTS[0], pki, auth)
    replica = tls_node(nodes, "node2", HOSTS[1], pki, auth)

    # The agent's own session (superuser) makes the roles; pg_basebackup and the
    # walreceiver (replicator, encrypted key) clone and stream.
    await primary.pg.bootstrap(timeout=120)
    await primary.pg.change_slots(SlotChanges(create=tuple(map(SlotSpec, ("node2",)))))
    await local_sql(
        primary, "CREATE TABLE t (id int, origin text); INSERT INTO t VALUES (1, 'both')"
    )
    await replica.pg.create_replica([primary.upstream], timeout=300)
    await replica.pg.start_on_disk(timeout=60)
    await wait_status(replica, lambda s: s.receiver_streaming, "streaming over TLS")
    await primary.pg.status()  # the agent's session is open now
    sessions = await local_sql(primary, SSL_SESSIONS)
    assert ("replicator", "walsender", True, "/CN=replicator") in sessions, sessions
    assert ("postgres", "client backend", True, "/CN=postgres") in sessions, sessions
    assert all(ssl for _, _, ssl, _ in sessions), sessions

    # Without a certificate the server refuses, so the above really needed them.
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba.conf entry|certificate"):
        await psycopg.AsyncConnection.connect(
            f"host={HOSTS[0]} port={primary.port} user=postgres password=su-secret-1 "
            "dbname=postgres sslmode=disable connect_timeout=5"
        )

    # The timeline check (replicator) and pg_rewind with its source check (rewinder).
    await local_sql(primary, "CHECKPOINT")
    await diverge_over_socket(primary, replica)
    await primary.pg.stop("fast", timeout=60)
    div = await primary.pg.check_divergence(replica.upstream)
    assert div.diverged, div
    outcome = await primary.pg.rewind(replica.upstream)
    assert "rewound" in outcome, outcome
    await wait_status(primary, lambda s: s.receiver_streaming, "streaming after the rewind")
    assert await local_sql(primary, "SELECT id, origin FROM t ORDER BY id") == [
        (1, "both"), (2, "new primary")
    ]  # fmt: skip


async def diverge_over_socket(primary: Node, replica: Node) -> None:
    """Promote the replica while the primary keeps running, and write on both."""
    await wait_status(replica, lambda s: s.replay_lsn is not None, "replaying")
    assert await replica.pg.promote()
    await replica.pg.change_slots(SlotChanges(create=tuple(map(SlotSpec, ("node1",)))))
    await local_sql(primary, "INSERT INTO t SELECT g, 'old' FROM generate_series(10, 500) g")
    await local_sql(replica, "INSERT INTO t VALUES (2, 'new primary')")
