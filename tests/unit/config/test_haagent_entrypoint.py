"""The `haagent` command: --version, root refusal, handing the settings to the engine."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import haagent.main
from haagent import __version__
from haagent.cli.main import main as haactl
from haagent.config import Settings
from haagent.main import main


@pytest.fixture(autouse=True)
def _no_haagent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("HAAGENT_"):
            monkeypatch.delenv(variable)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "pgbin"
    bin_dir.mkdir()
    (bin_dir / "pg_ctl").write_text("#!/bin/sh\n")
    (bin_dir / "pg_ctl").chmod(0o755)
    data = {
        "scope": "demo",
        "name": "n1",
        "restapi": {"listen": "127.0.0.11:8008"},
        "etcd3": {"hosts": ["127.0.0.11:2379"]},
        "postgresql": {
            "listen": "127.0.0.11:5432",
            "data_dir": str(tmp_path / "pgdata"),
            "bin_dir": str(bin_dir),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "replicator", "password": "rep"},
            },
        },
        "watchdog": {"mode": "off"},
        "unknown_section": {},
    }
    path = tmp_path / "n1.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "haagent 0.1.0\n"
    assert __version__ == "0.1.0"


def test_haactl_version() -> None:
    result = CliRunner().invoke(haactl, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"haactl {__version__}\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "the config file is missing" in capsys.readouterr().err
    assert main(["--no-such-option"]) == 2


def test_validate_prints_warnings_to_stderr(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--validate-config", str(config_file)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{config_file}: configuration is valid\n"
    assert captured.err == f"warning: {config_file}: unknown_section: unknown key, ignored\n"


def test_validation_may_run_as_root(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert main([str(config_file), "--validate-config"]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_the_daemon_refuses_root(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    started: list[Settings] = []
    fake = types.ModuleType("haagent.engine.daemon")
    fake.run_daemon = started.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "haagent.engine.daemon", fake)

    assert main([str(config_file)]) == 2

    err = capsys.readouterr().err
    assert "must not run as root" in err
    assert f"sudo -u postgres haagent {config_file}" in err
    assert started == []


def test_the_daemon_gets_the_settings(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(haagent.main, "configure_logging", lambda settings: None)
    started: list[Settings] = []

    def run_daemon(settings: Settings) -> int:
        started.append(settings)
        return 0

    fake = types.ModuleType("haagent.engine.daemon")
    fake.run_daemon = run_daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "haagent.engine.daemon", fake)

    assert main([str(config_file)]) == 0
    assert [s.name for s in started] == ["n1"]
    assert started[0].source == config_file


def test_the_daemon_with_a_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = tmp_path / "bad.yml"
    path.write_text("scope: demo\n")
    assert main([str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}: name: is missing")
