"""Schemathesis against the OpenAPI document: valid and invalid requests for every operation.

The server runs on a real socket over the fake controller.  Health checks answer 503 by
design, so the test does not forbid every 5xx: it forbids 500 (a crash), any code the
document does not declare, responses that break the document's schemas, and invalid
requests that are accepted.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from haagent.api import RestApiServer
from haagent.config.model import ListenAddress, RestApiSettings
from haagent_lab.fake_api import FakeController, replica_status

DOCUMENT = json.loads(resources.files("haagent.api").joinpath("openapi.json").read_text())
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A server in a thread of its own (schemathesis calls it with blocking requests)."""
    loop = asyncio.new_event_loop()
    settings_ = RestApiSettings(listen=ListenAddress(("127.0.0.1",), 0))
    server = RestApiServer(settings_, FakeController(replica_status()), scope="demo", name="node2")
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_fuzz(case: schemathesis.Case, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=10)
    assert response.status_code != 500, response.text
    case.validate_response(response, checks=CHECKS)
