"""A config written for another PostgreSQL version never stops the server (real PostgreSQL 15)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from pgnodes import Nodes, dynamic

from haagent.postgres.conf import format_value
from haagent.postgres.paramcheck import check_parameters

pytestmark = pytest.mark.integration
POSTGRES = Path("/usr/lib/postgresql/15/bin/postgres")


def test_the_server_says_what_it_refuses() -> None:
    refused = check_parameters(
        POSTGRES,
        {
            "wal_keep_segments": 8,  # PostgreSQL 12 and older
            "stats_temp_directory": "pg_stat_tmp",  # removed in 15
            "password_encryption": "on",  # a boolean up to 13
            "max_connections": 10**6,
            "checkpoint_timeout": "10d",
            "work_mem": "8MB",
            "pg_stat_statements.max": 10000,  # an extension's: left alone
        },
        format_value,
    )
    assert refused is not None
    assert {n: r.replacement for n, r in refused.items()} == {
        "wal_keep_segments": None,
        "stats_temp_directory": None,
        "password_encryption": None,
        "max_connections": None,  # 262143 is its bound, but too many with the other workers
        "checkpoint_timeout": 86400,
    }
    assert refused["max_connections"].reason == (
        '1000000 is outside the valid range for parameter "max_connections" (1 .. 262143), '
        'and the bound: invalid value for parameter "max_connections": 262143'
    )
    assert "Available values: md5, scram-sha-256" in refused["password_encryption"].reason
    assert check_parameters(POSTGRES, {"work_mem": "8MB"}, format_value) == {}


async def test_bootstrap_with_a_config_for_older_versions(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    # What Patroni's acceptance features bootstrap with, and settings of older versions.
    dyn = dynamic(wal_keep_segments=100, password_encryption="on")
    node = nodes.make("node1", "127.0.0.11", dyn=dyn)
    local = {**node.settings.parameters, "stats_temp_directory": "pg_stat_tmp",
             "checkpoint_timeout": "10d"}  # fmt: skip
    node.pg.instance.settings = replace(node.settings, parameters=local)
    with caplog.at_level(logging.WARNING, logger="haagent.postgres"):
        await node.pg.bootstrap(timeout=120)
    assert await node.sql("SHOW wal_keep_size") == [("1600MB",)]
    assert await node.sql("SHOW password_encryption") == [("scram-sha-256",)]
    conf = (node.settings.data_dir / "postgresql.conf").read_text()
    assert "wal_keep_segments" not in conf and "stats_temp_directory" not in conf
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        w.startswith("(DCS config) postgresql.parameters.wal_keep_segments = 100: written as "
                     "wal_keep_size = '1600MB'")
        for w in warnings
    ), warnings  # fmt: skip
    assert any(
        w.startswith("postgresql.parameters.stats_temp_directory = 'pg_stat_tmp': left out")
        for w in warnings
    ), warnings
    assert any(w.startswith("postgresql.parameters.checkpoint_timeout = '10d': written as 86400")
               for w in warnings), warnings  # fmt: skip
    assert await node.sql("SHOW checkpoint_timeout") == [("1d",)]
    # Asked once: the same parameters again are not checked (nor logged) twice.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="haagent.postgres"):
        assert await node.pg.apply_config() is False
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
