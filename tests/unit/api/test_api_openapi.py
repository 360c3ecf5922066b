"""The OpenAPI document describes exactly the endpoints the server routes."""

from __future__ import annotations

import json
from importlib import resources

from haagent.api import health, server
from haagent.api.changing import ACTIONS

DOC = json.loads(resources.files("haagent.api").joinpath("openapi.json").read_text())


def test_document_header() -> None:
    assert DOC["openapi"] == "3.0.3"
    assert DOC["components"]["securitySchemes"]["basicAuth"] == {"type": "http", "scheme": "basic"}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    routed: set[tuple[str, str]] = set()
    for path in health.PATHS:
        routed |= {(m, path) for m in ("get", "head", "options")}
    for path in [*server._DOCUMENTS, *server._OTHER_READS]:
        routed |= {(m, path) for m in ("get", "head", "options")}
    routed |= {(m.lower(), p) for m, p in ACTIONS}
    routed |= {("options", p) for _, p in ACTIONS}
    documented = {
        (method, path)
        for path, item in DOC["paths"].items()
        for method in item
        if method in {"get", "head", "options", "post", "put", "patch", "delete"}
    }
    assert documented == routed


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
