"""Rendering of postgresql.conf, recovery settings, pg_hba and pgpass (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from haagent.config.model import Credentials, ListenAddress
from haagent.postgres.conf import (
    ConfInputs,
    conninfo,
    effective_parameters,
    format_value,
    parse_sync_marker,
    parse_upstream_marker,
    render_conf,
    render_hba,
    render_pgpass,
)
from haagent.postgres.errors import ConfigurationError
from haagent.postgres.model import Upstream

LISTEN = ListenAddress(("127.0.0.11",), 5433)


def inputs(**changes: object) -> ConfInputs:
    base: dict[str, object] = {"name": "node-1", "scope": "demo", "listen": LISTEN}
    base.update(changes)
    return ConfInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "on"),
        (False, "off"),
        (100, "100"),
        (0.5, "0.5"),
        ("128MB", "'128MB'"),
        ("it's", "'it''s'"),
        ("a\\b", "'a\\\\b'"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_forced_and_default_parameters() -> None:
    params = effective_parameters(inputs(local={"port": 1, "listen_addresses": "*"}))
    assert params["listen_addresses"] == "127.0.0.11"
    assert params["port"] == 5433
    assert params["cluster_name"] == "demo"
    assert params["hot_standby"] is True
    assert params["max_wal_senders"] == 10 and params["max_replication_slots"] == 10
    assert params["wal_keep_size"] == "128MB"
    assert "wal_log_hints" not in params


def test_local_overrides_dynamic_except_cluster_wide() -> None:
    params = effective_parameters(
        inputs(
            dynamic={"work_mem": "4MB", "max_connections": 200},
            local={"work_mem": "8MB", "max_connections": 50, "max_wal_senders": 1},
        )
    )
    assert params["work_mem"] == "8MB"  # local wins
    assert params["max_connections"] == 200  # cluster-wide: the dynamic value wins
    assert params["max_wal_senders"] == 2  # raised to the minimum


def test_wal_level_and_rewind_hints() -> None:
    params = effective_parameters(inputs(local={"wal_level": "minimal"}, use_pg_rewind=True))
    assert params["wal_level"] == "replica"
    assert params["wal_log_hints"] is True
    params = effective_parameters(inputs(local={"wal_level": "logical"}))
    assert params["wal_level"] == "logical"


def test_synchronous_standby_names_managed_only_when_set() -> None:
    mine = {"synchronous_standby_names": "x"}
    assert effective_parameters(inputs(local=mine))["synchronous_standby_names"] == "x"
    managed = inputs(local=mine, synchronous_standby_names='FIRST 1 ("a")')
    assert effective_parameters(managed)["synchronous_standby_names"] == 'FIRST 1 ("a")'


def test_managed_synchronous_names_survive_an_agent_restart() -> None:
    assert parse_sync_marker(render_conf(inputs())) is None
    text = render_conf(inputs(synchronous_standby_names='ANY 1 ("a", "b")'))
    assert parse_sync_marker(text) == 'ANY 1 ("a", "b")'
    assert parse_sync_marker(render_conf(inputs(synchronous_standby_names=""))) == ""


def test_bad_parameter_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a parameter name"):
        effective_parameters(inputs(local={"work mem": 1}))
    with pytest.raises(ConfigurationError, match="not an integer"):
        effective_parameters(inputs(local={"max_wal_senders": "many"}))


def test_primary_conf_has_no_recovery_settings() -> None:
    text = render_conf(inputs())
    assert text.startswith("# Managed by haagent")
    assert "include_if_exists 'postgresql.base.conf'" in text.splitlines()[3]
    assert "primary_conninfo" not in text and "recovery_target_timeline" not in text
    assert "port = 5433" in text


def test_standby_conf_points_at_the_upstream_with_a_slot() -> None:
    up = Upstream("node2", "127.0.0.12", 5434)
    rep = Credentials("replicator", "secret")
    text = render_conf(inputs(standby=True, upstream=up, replication=rep, pgpass=Path("/p/pass")))
    assert (
        "primary_conninfo = 'host=127.0.0.12 port=5434 user=replicator passfile=/p/pass "
        "application_name=node-1'" in text
    )
    assert "primary_slot_name = 'node_1'" in text
    assert "recovery_target_timeline = 'latest'" in text
    assert "secret" not in text
    assert parse_upstream_marker(text) == up
    no_slots = render_conf(inputs(standby=True, upstream=up, use_slots=False))
    assert "primary_slot_name" not in no_slots
    no_leader = render_conf(inputs(standby=True))
    assert "primary_conninfo" not in no_leader and "recovery_target_timeline" in no_leader
    assert parse_upstream_marker(no_leader) is None


def test_conninfo_quoting() -> None:
    assert conninfo({"host": "h", "port": 5}) == "host=h port=5"
    assert conninfo({"a": "x y", "b": "it's", "c": ""}) == "a='x y' b='it\\'s' c=''"


def test_hba_and_pgpass() -> None:
    assert render_hba(("local all all trust",)).endswith("\nlocal all all trust\n")
    text = render_pgpass(
        [
            ("127.0.0.12", 5433, Credentials("rep", "p:w\\d")),
            ("127.0.0.12", 5433, Credentials("nopass")),
            ("127.0.0.12", 5433, Credentials("rep", "other")),
            ("/run/pg:x", 5432, Credentials("postgres", "su")),
        ]
    )  # each password scoped to one server, never *:*:*
    assert text == "127.0.0.12:5433:*:rep:p\\:w\\\\d\n/run/pg\\:x:5432:*:postgres:su\n"
    with pytest.raises(ConfigurationError, match="control characters"):
        render_pgpass([("h", 1, Credentials("rep", "pw\n127.0.0.1:5432:*:rep:x"))])


def test_a_standby_keeping_logical_slots_sends_feedback_and_from_17_syncs_them() -> None:
    up = Upstream("node2", "127.0.0.12", 5434)
    standby = inputs(standby=True, upstream=up, server_version=150004, logical_slots=True)
    params = effective_parameters(standby)
    # Copies of logical slots need the primary to keep the catalog rows they decode.
    assert params["hot_standby_feedback"] is True and "sync_replication_slots" not in params
    assert "dbname" not in render_conf(standby)
    assert "hot_standby_feedback" not in effective_parameters(
        inputs(standby=True, upstream=up, server_version=150004)
    )
    assert "hot_standby_feedback" not in effective_parameters(
        inputs(upstream=up, server_version=150004, logical_slots=True)
    )  # a primary: nothing to send feedback to
    seventeen = inputs(standby=True, upstream=up, server_version=170002, logical_slots=True)
    params = effective_parameters(seventeen)
    assert params["sync_replication_slots"] is True and params["hot_standby_feedback"] is True
    assert "dbname=postgres" in render_conf(seventeen)  # the slot sync worker needs one


def test_a_standby_of_the_archive_alone_runs_the_standby_clusters_recovery_settings() -> None:
    """A standby cluster without host: a standby with no upstream (the standby leader)
    replays the archive with the section's settings over its own, with no
    primary_conninfo; one streaming from a member keeps its own."""
    archive = (("restore_command", "cp /dr/%f %p"), ("recovery_min_apply_delay", "5min"))
    own = {"restore_command": "cp /own/%f %p", "archive_cleanup_command": "true"}
    text = render_conf(inputs(standby=True, recovery=own, archive_recovery=archive))
    assert "restore_command = 'cp /dr/%f %p'" in text
    assert "recovery_min_apply_delay = '5min'" in text
    assert "archive_cleanup_command = 'true'" in text
    assert "primary_conninfo" not in text and "primary_slot_name" not in text
    assert "recovery_target_timeline = 'latest'" in text
    up = Upstream("node2", "127.0.0.12", 5434)
    streaming = render_conf(
        inputs(standby=True, upstream=up, recovery=own, archive_recovery=archive)
    )
    assert "restore_command = 'cp /own/%f %p'" in streaming and "/dr/" not in streaming
