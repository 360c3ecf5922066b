"""Agents on a PostgreSQL that requires client certificates: bootstrap, clone, stream, switch
over, every connection with the user's certificate (real etcd, PostgreSQL 15, openssl)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from haagent_lab.lab.cluster import LabCluster, LabNode
from support.pki import issue, make_ca

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CERT_HBA = [
    "local all all trust",
    "hostssl replication replicator 127.0.0.0/8 cert",
    "hostssl all all 127.0.0.0/8 cert",
]


def require_client_certificates(pki: Path) -> Callable[[LabNode, dict[str, Any]], None]:
    """A lab node's config with TLS required by PostgreSQL and a certificate per user."""

    def configure(node: LabNode, config: dict[str, Any]) -> None:
        cert, key = issue(pki, f"server-{node.name}", node.host, ips=(node.host,))
        pg = config["postgresql"]
        pg["parameters"].update(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key),
                                ssl_ca_file=str(pki / "ca.crt"))  # fmt: skip
        pg["pg_hba"] = CERT_HBA
        config["bootstrap"]["pg_hba"] = CERT_HBA
        for user in pg["authentication"].values():
            user.update(
                sslmode="verify-full",
                sslcert=str(pki / f"{user['username']}.crt"),
                sslkey=str(pki / f"{user['username']}.key"),
                sslrootcert=str(pki / "ca.crt"),
            )

    return configure


def sessions(node: LabNode) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        f"host={node.base} port={node.pg_port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        return conn.execute(
            "SELECT a.usename, a.backend_type, s.ssl, s.client_dn FROM pg_stat_activity a "
            "JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL ORDER BY 1, 2"
        ).fetchall()


def test_agents_with_client_certificates(
    lab_factory: Callable[..., LabCluster], workdir: Path
) -> None:
    pki = make_ca(workdir / "pki")
    for user in ("postgres", "replicator", "rewind_user"):
        issue(pki, user, user)
    lab = lab_factory(
        names=("node1", "node2"),
        hosts=("127.0.0.11", "127.0.0.12"),
        configure=require_client_certificates(pki),
    )
    lab.start(timeout=120)
    leader = lab.leader()
    assert leader is not None
    replica = next(n for n in lab.nodes if n != leader)
    rows = sessions(lab.nodes[leader])
    assert ("replicator", "walsender", True, "/CN=replicator") in rows, rows
    assert ("postgres", "client backend", True, "/CN=postgres") in rows, rows
    assert all(ssl for _, _, ssl, _ in rows), rows

    body = json.dumps({"leader": leader, "candidate": replica}).encode()
    request = urllib.request.Request(
        lab.nodes[leader].api_url + "/switchover", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    lab.wait_for(lambda: lab.leader() == replica, "the switchover", 60)
    lab.wait_healthy(120)
    rows = sessions(lab.nodes[replica])
    assert ("replicator", "walsender", True, "/CN=replicator") in rows, rows
