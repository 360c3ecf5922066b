"""The changing endpoints over HTTP: typed requests to the controller, its outcome as the
answer, and 400 with a reason for every bad body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from haagent.engine.requests import (
    CancelRestartRequest,
    CancelSwitchoverRequest,
    FailoverRequest,
    FailsafeRequest,
    ReinitializeRequest,
    ReloadRequest,
    RequestResult,
    RestartRequest,
    SwitchoverRequest,
)
from haagent_lab.fake_api import primary_status, replica_status

StartApi = Any  # the start_api fixture (tests/integration/api/conftest.py)


@pytest.mark.parametrize(
    ("method", "path", "body", "request_"),
    [
        ("POST", "/switchover", {"leader": "node1"}, SwitchoverRequest("node1")),
        (
            "POST",
            "/switchover",
            {"leader": "node1", "candidate": "node2", "scheduled_at": "2030-01-01T10:00+01:00"},
            SwitchoverRequest("node1", "node2", datetime(2030, 1, 1, 9, 0, tzinfo=UTC)),
        ),
        ("DELETE", "/switchover", None, CancelSwitchoverRequest()),
        ("POST", "/failover", {"candidate": "node2"}, FailoverRequest("node2")),
        ("POST", "/restart", None, RestartRequest()),
        (
            "POST",
            "/restart",
            {"role": "replica", "timeout": 60},
            RestartRequest(role="replica", timeout=60.0),
        ),
        ("DELETE", "/restart", None, CancelRestartRequest()),
        ("POST", "/reinitialize", {"force": True}, ReinitializeRequest(force=True)),
        ("POST", "/reinitialize", None, ReinitializeRequest()),
        ("POST", "/reload", None, ReloadRequest()),
        ("POST", "/failsafe", {"name": "node1"}, FailsafeRequest("node1", {"name": "node1"})),
    ],
)
async def test_each_action_reaches_the_controller(
    start_api: StartApi, method: str, path: str, body: Any, request_: Any
) -> None:
    api = await start_api(replica_status())
    got = (
        await api.call(method, path, json=body)
        if body is not None
        else await api.call(method, path)
    )
    assert got.status == 200, got.text
    assert got.headers["Content-Type"].startswith("text/plain")
    assert got.text.strip() == f"{type(request_).__name__} done"
    assert api.controller.requests == [request_]


@pytest.mark.parametrize("code", [200, 202, 404, 409, 412, 422, 503])
async def test_the_controller_outcome_is_the_answer(start_api: StartApi, code: int) -> None:
    api = await start_api(primary_status())
    api.controller.results[SwitchoverRequest] = RequestResult(code, f"outcome {code}")
    got = await api.call("POST", "/switchover", json={"leader": "node1", "candidate": "node2"})
    assert (got.status, got.text.strip()) == (code, f"outcome {code}")


async def test_a_result_with_a_body_answers_json(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    api.controller.results[RestartRequest] = RequestResult(202, "scheduled", {"schedule": "x"})
    got = await api.call("POST", "/restart", json={"schedule": "2030-01-01T00:00Z"})
    assert got.status == 202
    assert json.loads(got.body) == {"schedule": "x"}


async def test_a_failing_controller_answers_503(start_api: StartApi) -> None:
    api = await start_api(primary_status())

    async def broken(request: Any) -> RequestResult:
        raise RuntimeError("queue closed")

    api.controller.submit = broken  # type: ignore[method-assign]
    got = await api.call("POST", "/reload")
    assert got.status == 503
    assert "ReloadRequest failed" in got.text


async def test_config_patch_put_and_conflict(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    patch = {"ttl": 20, "postgresql": {"parameters": {"max_connections": None}}}
    got = await api.call("PATCH", "/config", json=patch)
    assert got.status == 200
    doc = json.loads(got.body)
    assert doc["ttl"] == 20 and doc["postgresql"]["parameters"] == {}
    got = await api.call("PUT", "/config", json={"ttl": 40, "loop_wait": 5})
    assert (got.status, json.loads(got.body)) == (200, {"ttl": 40, "loop_wait": 5})
    api.controller.config_status = 409
    got = await api.call("PATCH", "/config", json={"ttl": 25})
    assert got.status == 409 and "aborted" in got.text


SCHEDULE_NO_TZ = {"leader": "node1", "scheduled_at": "2030-01-01T10:00:00"}


@pytest.mark.parametrize(
    ("method", "path", "data", "words"),
    [
        ("POST", "/switchover", b'{"leader": "node1",', "not valid JSON"),
        ("POST", "/switchover", b"", "body is required"),
        ("POST", "/switchover", b'{"candidate": "node2"}', "'leader' is required"),
        ("POST", "/switchover", b'{"leader": "node1", "candidate": "node1"}', "are the same"),
        ("POST", "/switchover", json.dumps(SCHEDULE_NO_TZ).encode(), "timezone"),
        ("POST", "/switchover", b'{"leader": 7}', "'leader' must be a string"),
        ("POST", "/switchover", b'{"leader": "n1", "force": true}', "unknown field 'force'"),
        ("POST", "/failover", b'{"leader": "node1"}', "'candidate' is required"),
        ("POST", "/failover", b"[]", "must be a JSON object"),
        ("POST", "/restart", b'{"role": "boss"}', "'role' must be one of"),
        ("POST", "/restart", b'{"timeout": "forever"}', "'timeout'"),
        ("POST", "/restart", b'{"restart_pending": 1}', "'restart_pending' must be true or false"),
        ("POST", "/reinitialize", b'{"force": "yes"}', "'force' must be true or false"),
        ("POST", "/reinitialize", b"\xff\xfe", "UTF-8"),
        ("POST", "/failsafe", b"{}", "'name' is required"),
        ("PATCH", "/config", b'{"ttl": "thirty"}', "'ttl' must be an integer"),
        ("PATCH", "/config", b"null", "must be a JSON object"),
        ("PUT", "/config", b'{"ttl": null}', "null"),
    ],
)
async def test_bad_bodies_answer_400_saying_why(
    start_api: StartApi, method: str, path: str, data: bytes, words: str
) -> None:
    api = await start_api(primary_status())
    got = await api.call(method, path, data=data, headers={"Content-Type": "application/json"})
    assert got.status == 400, got.text
    assert words in got.text
    assert api.controller.requests == []


async def test_a_schedule_in_the_past_answers_422(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    got = await api.call(
        "POST", "/switchover", json={"leader": "node1", "scheduled_at": "2001-01-01T00:00Z"}
    )
    assert got.status == 422 and "in the past" in got.text


async def test_bodies_over_64_kib_answer_400(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    big = json.dumps({"leader": "node1", "candidate": "x" * 70000}).encode()
    got = await api.call("POST", "/switchover", data=big)
    assert got.status == 400 and "larger than 65536 bytes" in got.text

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b" " * 8192

    got = await api.call("POST", "/restart", data=chunks())
    assert got.status == 400 and "larger than 65536 bytes" in got.text
    just_fits = b'{"leader": "node1", "candidate": "node2"}'.ljust(65536)
    got = await api.call("POST", "/switchover", data=just_fits)
    assert got.status == 200
