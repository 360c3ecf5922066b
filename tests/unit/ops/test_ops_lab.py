"""config/lab/ holds what `dev/lab up` writes; `python -m haagent_lab.lab` answers without a lab.

Nothing here starts the lab: `dev/lab up` uses fixed ports (5432, 8008, 2379,
5000...) and would collide with a lab someone is running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from haagent.config import load_settings_with_warnings
from haagent.config.model import Address
from haagent_lab.lab.__main__ import make_lab
from haagent_lab.lab.haproxy import haproxy_config

REPO = Path(__file__).resolve().parents[3]
LAB_CONFIGS = REPO / "config" / "lab"
LAB_DIR = Path("/var/tmp/haagent-lab")  # dev/lab's default --dir


@pytest.fixture(autouse=True)
def _no_haagent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("HAAGENT_"):
            monkeypatch.delenv(variable)


def test_the_lab_examples_are_what_the_lab_writes() -> None:
    lab = make_lab(LAB_DIR)
    assert sorted(p.name for p in LAB_CONFIGS.glob("*.yml")) == [f"{n}.yml" for n in lab.nodes]
    for node in lab.nodes.values():
        shipped = yaml.safe_load((LAB_CONFIGS / f"{node.name}.yml").read_text())
        assert shipped == lab.node_config(node), f"config/lab/{node.name}.yml is stale"


def test_the_lab_haproxy_example_is_what_the_lab_writes() -> None:
    lab = make_lab(LAB_DIR)
    assert lab.haproxy_ports == (5000, 5001, 7000)
    generated = haproxy_config(
        [(n.name, Address(n.host, n.pg_port), n.api_port) for n in lab.nodes.values()],
        bind_host=lab.haproxy_host,
        ports=lab.haproxy_ports,
    )
    shipped = (LAB_CONFIGS / "haproxy.cfg").read_text()
    assert uncommented(shipped) == uncommented(generated), "config/lab/haproxy.cfg is stale"


def uncommented(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


@pytest.mark.skipif(
    not Path("/usr/lib/postgresql/15/bin/pg_ctl").exists(), reason="PostgreSQL 15 is not installed"
)
@pytest.mark.parametrize("name", ["node1", "node2", "node3"])
def test_the_lab_examples_are_valid(name: str) -> None:
    settings, warnings = load_settings_with_warnings(LAB_CONFIGS / f"{name}.yml")
    assert settings.name == name
    assert settings.scope == "haagent-lab"
    assert warnings == []


def lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haagent_lab.lab", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )


def test_lab_help_lists_its_commands() -> None:
    result = lab_command("--help")
    assert result.returncode == 0, result.stderr
    assert "{up,status,down}" in result.stdout
    assert "--dir" in result.stdout


def test_lab_rejects_an_unknown_command() -> None:
    result = lab_command("sideways")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_lab_status_without_a_lab_says_how_to_start_one(tmp_path: Path) -> None:
    result = lab_command("status", "--dir", str(tmp_path / "no-lab"))
    assert result.returncode == 1
    assert "dev/lab up" in result.stdout


def test_lab_down_without_a_lab_is_harmless(tmp_path: Path) -> None:
    base = tmp_path / "no-lab"
    base.mkdir()
    (base / "leftover").write_text("x")
    result = lab_command("down", "--dir", str(base))
    assert result.returncode == 0, result.stderr
    assert not base.exists()
