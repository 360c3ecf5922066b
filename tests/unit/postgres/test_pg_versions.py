"""Parameters across PostgreSQL versions: renames, and what the server refuses (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from haagent.config.model import ListenAddress
from haagent.postgres.conf import ConfInputs, effective_parameters, render_conf, user_parameters
from haagent.postgres.paramcheck import Refusal, parse_refusals
from haagent.postgres.versions import for_version, major_name, parse_version_output

PG15 = 150004
PG12 = 120010


def inputs(**changes: object) -> ConfInputs:
    base: dict[str, object] = {"name": "n1", "scope": "demo", "listen": ListenAddress(("h",), 1)}
    base.update(changes)
    return ConfInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", 150018),
        ("postgres (PostgreSQL) 17.0\n", 170000),
        ("postgres (PostgreSQL) 9.6.24\n", 90624),
        ("postgres (PostgreSQL) 18devel\n", 180000),
        ("something else", None),
    ],
)
def test_server_version_from_postgres_v(text: str, version: int | None) -> None:
    assert parse_version_output(text) == version


def test_major_names() -> None:
    assert major_name(150018) == "15" and major_name(90624) == "9.6"


def test_wal_keep_segments_becomes_wal_keep_size_on_13_and_later() -> None:
    params, notes = for_version({"wal_keep_segments": 100}, PG15, "postgresql.parameters")
    assert params == {"wal_keep_size": "1600MB"}
    assert notes == [
        "postgresql.parameters.wal_keep_segments = 100: written as wal_keep_size = '1600MB' "
        "(PostgreSQL 15 has no wal_keep_segments)"
    ]
    # Both given: the version's own setting wins.
    params, notes = for_version(
        {"wal_keep_segments": 8, "wal_keep_size": "1GB"}, PG15, "postgresql.parameters"
    )
    assert params == {"wal_keep_size": "1GB"} and "left out" in notes[0]
    # Unchanged where nothing needs translating, and when the version is unknown.
    assert for_version({"wal_keep_size": "1GB"}, PG15, "x") == ({"wal_keep_size": "1GB"}, [])
    assert for_version({"wal_keep_segments": 8}, None, "x") == ({"wal_keep_segments": 8}, [])


def test_wal_keep_size_becomes_segments_before_13() -> None:
    assert for_version({"wal_keep_size": "128MB"}, PG12, "x")[0] == {"wal_keep_segments": 8}
    assert for_version({"wal_keep_size": 1024}, PG12, "x")[0] == {"wal_keep_segments": 64}
    assert for_version({"wal_keep_size": "1GB"}, PG12, "x")[0] == {"wal_keep_segments": 64}


def test_wal_level_names() -> None:
    assert for_version({"wal_level": "hot_standby"}, PG15, "x")[0] == {"wal_level": "replica"}
    assert for_version({"wal_level": "replica"}, 90500, "x")[0] == {"wal_level": "hot_standby"}
    assert for_version({"wal_level": "logical"}, PG15, "x") == ({"wal_level": "logical"}, [])


def test_an_old_config_in_the_dcs_is_written_for_the_server() -> None:
    # Patroni's acceptance features bootstrap with wal_keep_segments: 100 in bootstrap.dcs.
    old = inputs(dynamic={"wal_keep_segments": 100}, server_version=PG15)
    params = effective_parameters(old)
    assert params["wal_keep_size"] == "1600MB" and "wal_keep_segments" not in params
    assert "wal_keep_segments" not in render_conf(old)
    notes = user_parameters(old).notes
    assert notes[0].startswith("(DCS config) postgresql.parameters.wal_keep_segments = 100")
    # The cluster-wide value wins over a local one, as for wal_keep_size itself.
    both = inputs(dynamic={"wal_keep_segments": 4}, local={"wal_keep_size": "1GB"},
                  server_version=PG15)  # fmt: skip
    assert effective_parameters(both)["wal_keep_size"] == "64MB"
    # Without a user value, haagent's default (already a size) stands.
    assert effective_parameters(inputs(server_version=PG15))["wal_keep_size"] == "128MB"
    assert effective_parameters(inputs(server_version=PG12))["wal_keep_segments"] == 8


def test_refused_parameters_are_left_out_or_brought_into_range() -> None:
    base = inputs(
        local={"stats_temp_directory": "/x", "max_connections": 10**6, "max_wal_senders": "x"},
        adjusted={"stats_temp_directory": None, "max_connections": 262143,
                  "max_wal_senders": None},
    )  # fmt: skip
    params = effective_parameters(base)
    assert "stats_temp_directory" not in params
    assert params["max_connections"] == 262143
    assert params["max_wal_senders"] == 10  # refused: haagent's default applies again
    assert user_parameters(base).sources["max_connections"] == "postgresql.parameters"


# Real messages of PostgreSQL 15 reading a candidate file (`postgres -C`).
OUTPUT = """\
2026-11-30 13:37:16.301 GMT [7382] LOG:  skipping missing configuration file "/s/data/postgresql.auto.conf"
2026-11-30 13:37:16.301 GMT [7382] LOG:  invalid value for parameter "password_encryption": "on"
2026-11-30 13:37:16.301 GMT [7382] HINT:  Available values: md5, scram-sha-256.
2026-11-30 13:37:16.301 GMT [7382] LOG:  1000000 is outside the valid range for parameter "max_connections" (1 .. 262143)
2026-11-30 13:37:16.301 GMT [7382] LOG:  parameter "ssl" requires a Boolean value
2026-11-30 13:37:16.301 GMT [7382] LOG:  864000 s is outside the valid range for parameter "checkpoint_timeout" (30 .. 86400)
2026-11-30 13:37:16.301 GMT [7382] LOG:  -1 is outside the valid range for parameter "random_page_cost" (0 .. 1.79769e+308)
2026-11-30 13:37:16.301 GMT [7382] LOG:  invalid value for parameter "TimeZone": "Mars/Base"
2026-11-30 13:37:16.302 GMT [7382] FATAL:  configuration file "/s/candidate.conf" contains errors
"""  # noqa: E501
NAMES = """\
2026-11-30 13:37:15.135 GMT [7358] LOG:  unrecognized configuration parameter "wal_keep_segments" in file "/s/candidate.conf" line 2
2026-11-30 13:37:15.135 GMT [7358] LOG:  syntax error in file "/s/candidate.conf" line 3, near token "x"
2026-11-30 13:37:15.135 GMT [7358] LOG:  syntax error in file "/elsewhere.conf" line 1, near token "x"
2026-11-30 13:37:15.135 GMT [7358] FATAL:  configuration file "/s/candidate.conf" contains errors
"""  # noqa: E501


def test_server_messages_name_the_refused_parameters() -> None:
    refusals = parse_refusals(OUTPUT, Path("/s/candidate.conf"), {})
    assert refusals["password_encryption"] == Refusal(
        "password_encryption",
        'invalid value for parameter "password_encryption": "on" '
        "(Available values: md5, scram-sha-256.)",
    )
    assert refusals["max_connections"].replacement == 262143
    assert refusals["checkpoint_timeout"].replacement == 86400
    assert refusals["random_page_cost"].replacement == 0
    assert refusals["ssl"].replacement is None
    assert refusals["timezone"].name == "TimeZone"
    assert len(refusals) == 6


def test_messages_naming_a_line_of_the_candidate() -> None:
    lines = {1: "a", 2: "wal_keep_segments", 3: "work_mem"}
    refusals = parse_refusals(NAMES, Path("/s/candidate.conf"), lines)
    assert sorted(refusals) == ["wal_keep_segments", "work_mem"]
    assert refusals["wal_keep_segments"].reason == (
        'unrecognized configuration parameter "wal_keep_segments"'
    )
