"""Validation of the changing endpoints' JSON bodies into typed requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from haagent.api import bodies
from haagent.api.bodies import MAX_BODY_BYTES, BodyError
from haagent.engine.requests import (
    FailoverRequest,
    FailsafeRequest,
    ReinitializeRequest,
    RestartRequest,
    SwitchoverRequest,
)

NOW = datetime(2024, 9, 24, 12, 0, tzinfo=UTC)


def _error(fn: Any, *args: Any) -> BodyError:
    with pytest.raises(BodyError) as info:
        fn(*args)
    return info.value


def test_decode() -> None:
    assert bodies.decode(b'{"a": 1}', required=True) == {"a": 1}
    assert bodies.decode(b"", required=False) is None
    assert "not valid JSON" in _error(lambda: bodies.decode(b"  \n", required=False)).message
    assert "required" in _error(lambda: bodies.decode(b"", required=True)).message
    assert "not valid JSON" in _error(lambda: bodies.decode(b'{"a": ', required=True)).message
    assert "UTF-8" in _error(lambda: bodies.decode(b'"\xff"', required=True)).message
    big = b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}'
    error = _error(lambda: bodies.decode(big, required=True))
    assert error.status == 400 and "larger than 65536" in error.message


def test_switchover() -> None:
    assert bodies.switchover({"leader": "node1"}, NOW) == SwitchoverRequest("node1")
    assert bodies.switchover({"leader": "node1", "candidate": "node2"}, NOW) == (
        SwitchoverRequest("node1", "node2")
    )
    # patronictl sends an explicit null candidate; old clients say `member`
    assert bodies.switchover({"leader": "node1", "candidate": None}, NOW).candidate is None
    assert bodies.switchover({"leader": "node1", "member": "node3"}, NOW).candidate == "node3"
    request = bodies.switchover({"leader": "node1", "scheduled_at": "2024-09-24T14:00+02:00"}, NOW)
    assert request.scheduled_at == datetime(2024, 9, 24, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    later = bodies.switchover({"leader": "n1", "scheduled_at": "2030-01-01T00:00:00Z"}, NOW)
    assert later.scheduled_at is not None and later.scheduled_at.year == 2030


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "'leader' is required"),
        ({"candidate": "node2"}, 400, "'leader' is required"),
        ({"leader": "node1", "candidate": "node1"}, 400, "are the same"),
        ({"leader": 1}, 400, "'leader' must be a string, not a number"),
        ({"leader": "node1", "candidate": ["node2"]}, 400, "'candidate' must be a string"),
        ({"leader": "node1", "candiate": "node2"}, 400, "unknown field 'candiate'"),
        ({"leader": "node1", "scheduled_at": "2030-01-01T12:00"}, 400, "timezone"),
        ({"leader": "node1", "scheduled_at": "tomorrow"}, 400, "cannot parse"),
        ({"leader": "node1", "scheduled_at": 12}, 400, "ISO-8601 string"),
        ({"leader": "node1", "scheduled_at": "2020-01-01T12:00+00:00"}, 422, "in the past"),
        ({"leader": "node1", "scheduled_at": "9999-12-31T23:59:59-23:59"}, 400, "out of range"),
        ({"leader": "node1", "scheduled_at": ""}, 400, "cannot parse"),
        (["node1"], 400, "must be a JSON object, not an array"),
        ("node1", 400, "must be a JSON object, not a string"),
    ],
)
def test_switchover_errors(body: Any, status: int, words: str) -> None:
    error = _error(bodies.switchover, body, NOW)
    assert error.status == status
    assert words in error.message


def test_failover() -> None:
    assert bodies.failover({"candidate": "node2"}) == FailoverRequest("node2")
    assert bodies.failover({"candidate": "node2", "leader": "node1"}) == (
        FailoverRequest("node2", "node1")
    )
    assert "'candidate' is required" in _error(bodies.failover, {"leader": "node1"}).message
    assert "are the same" in _error(bodies.failover, {"leader": "n1", "candidate": "n1"}).message
    assert (
        "cannot be scheduled"
        in _error(bodies.failover, {"candidate": "n2", "scheduled_at": "2030-01-01T00:00Z"}).message
    )
    assert (
        "unknown field 'force'" in _error(bodies.failover, {"candidate": "n2", "force": 1}).message
    )


def test_restart() -> None:
    assert bodies.restart(None, NOW) == RestartRequest()
    assert bodies.restart({}, NOW) == RestartRequest()
    request = bodies.restart(
        {"role": "master", "postgres_version": "15.4", "timeout": "2min", "restart_pending": True,
         "schedule": "2030-01-01T00:00:00+00:00"},
        NOW,
    )  # fmt: skip
    assert request.role == "primary"
    assert request.postgres_version == "15.4"
    assert request.timeout == 120.0
    assert request.restart_pending is True
    assert request.schedule == datetime(2030, 1, 1, tzinfo=UTC)
    assert bodies.restart({"role": "any", "timeout": 30, "postgres_version": 16}, NOW) == (
        RestartRequest(role=None, timeout=30.0, postgres_version="16")
    )


@pytest.mark.parametrize(
    ("value", "pending"),
    [("True", True), ("true", True), ("yes", True), ("ON", True), ("1", True),
     ("False", False), ("false", False), ("off", False), ("0", False), (None, False)],
)  # fmt: skip
def test_restart_pending_may_be_a_string_as_patroni_accepts(value: str, pending: bool) -> None:
    assert bodies.restart({"restart_pending": value}, NOW).restart_pending is pending


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"role": "leader"}, "'role' must be one of"),
        ({"role": 1}, "'role' must be a string"),
        ({"postgres_version": "fifteen"}, "'postgres_version'"),
        ({"postgres_version": True}, "'postgres_version'"),
        ({"timeout": "soon"}, "'timeout'"),
        ({"timeout": -1}, "'timeout'"),
        ({"timeout": True}, "'timeout'"),
        ({"restart_pending": "maybe"}, "'restart_pending' must be true or false"),
        ({"restart_pending": " true"}, "'restart_pending' must be true or false"),
        ({"restart_pending": 1}, "'restart_pending' must be true or false"),
        ({"schedule": "2030-01-01 10:00"}, "timezone"),
        ({"when": "now"}, "unknown field 'when'"),
        ([1], "must be a JSON object"),
    ],
)
def test_restart_errors(body: Any, words: str) -> None:
    error = _error(bodies.restart, body, NOW)
    assert error.status == 400
    assert words in error.message


def test_reinitialize() -> None:
    assert bodies.reinitialize(None) == ReinitializeRequest()
    assert bodies.reinitialize({"force": True}) == ReinitializeRequest(force=True)
    assert bodies.reinitialize({"from-leader": True}) == ReinitializeRequest(from_leader=True)
    assert bodies.reinitialize({"from_leader": True}).from_leader is True
    assert "'force' must be true or false" in _error(bodies.reinitialize, {"force": 1}).message
    assert "unknown field" in _error(bodies.reinitialize, {"forced": True}).message


def test_failsafe() -> None:
    body = {"name": "node1", "api_url": "http://h:8008/patroni", "slots": {"node2": 100}}
    assert bodies.failsafe(body) == FailsafeRequest("node1", body)
    assert "'name' is required" in _error(bodies.failsafe, {"api_url": "x"}).message
    assert "JSON object" in _error(bodies.failsafe, None).message


def test_config() -> None:
    patch = {"ttl": 20, "postgresql": {"parameters": {"max_connections": None}}, "x": None}
    assert bodies.config(patch, patch=True) == patch
    assert bodies.config({"custom": [1, 2], "synchronous_mode": "quorum"}, patch=False)
    for body, words in [
        ({"ttl": "30"}, "'ttl' must be an integer, not a string"),
        ({"ttl": True}, "'ttl' must be an integer"),
        ({"loop_wait": -5}, "must not be negative"),
        ({"pause": "true"}, "'pause' must be true or false"),
        ({"synchronous_mode": "yes"}, "synchronous_mode"),
        ({"postgresql": []}, "'postgresql' must be a JSON object"),
        ([], "must be a JSON object"),
    ]:
        assert words in _error(lambda b=body: bodies.config(b, patch=True)).message
    assert "null" in _error(lambda: bodies.config({"ttl": None}, patch=False)).message
    assert bodies.config({"maximum_lag_on_syncnode": -1}, patch=False)
