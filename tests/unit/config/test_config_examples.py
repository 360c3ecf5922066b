"""The example configs in config/ are valid and describe one three-node cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haagent.config import Address, load_settings_with_warnings
from haagent.main import main

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "config").glob("node*.yml"))
PG_CTL = Path("/usr/lib/postgresql/15/bin/pg_ctl")

pytestmark = pytest.mark.skipif(not PG_CTL.exists(), reason=f"{PG_CTL} is not installed")


@pytest.fixture(autouse=True)
def _no_haagent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("HAAGENT_"):
            monkeypatch.delenv(variable)


def test_there_are_three_examples() -> None:
    assert [p.name for p in EXAMPLES] == ["node1.yml", "node2.yml", "node3.yml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_without_warnings(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--validate-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: configuration is valid\n"
    assert captured.err == ""


def test_examples_form_one_cluster() -> None:
    nodes = [load_settings_with_warnings(path, {})[0] for path in EXAMPLES]
    assert {n.scope for n in nodes} == {"stampede"}
    assert [n.name for n in nodes] == ["node1", "node2", "node3"]
    assert [n.restapi.connect_address for n in nodes] == [
        Address(f"node{i}", 8008) for i in (1, 2, 3)
    ]
    assert [n.postgresql.connect_address for n in nodes] == [
        Address(f"node{i}", 5432) for i in (1, 2, 3)
    ]
    for node in nodes:
        assert node.etcd3.hosts == tuple(Address(f"node{i}", 2379) for i in (1, 2, 3))
        assert node.watchdog.mode == "required"
        assert node.restapi.authentication is not None
        assert node.postgresql.authentication.rewind is not None
        assert node.bootstrap.dcs == nodes[0].bootstrap.dcs
        assert node.bootstrap.initdb == (("encoding", "UTF8"), "data-checksums")
