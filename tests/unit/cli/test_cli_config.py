"""`haactl show-config` / `edit-config`: building the change, the diff, the CAS write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from haactl_memory import CONFIG, Cli, get, put

from haagent.cli.commands_config import apply_assignments, diff, key_path
from haagent.cli.errors import BadInput
from haagent.config.dynamic import merge_patch
from haagent.dcs.memory import MemoryStore


def test_set_and_pg_assignments_build_nested_keys() -> None:
    result = apply_assignments(
        CONFIG,
        ["ttl=40", "postgresql.use_slots=false", "synchronous_mode=on", "retry_timeout=null"],
        ["work_mem=16MB", "pg_stat_statements.track=all", "max_connections=200"],
    )
    assert result["ttl"] == 40
    assert result["synchronous_mode"] is True
    assert "retry_timeout" not in result
    assert result["postgresql"]["use_slots"] is False
    assert result["postgresql"]["parameters"] == {
        "max_connections": 200,
        "work_mem": "16MB",
        "pg_stat_statements.track": "all",
    }
    assert CONFIG["ttl"] == 30  # the input is not changed


def test_parameter_names_keep_their_dots() -> None:
    assert key_path("postgresql.parameters.auto_explain.log_min_duration") == [
        "postgresql", "parameters", "auto_explain.log_min_duration",
    ]  # fmt: skip
    assert key_path("a.b.c") == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ["ttl", "=3", "a..b=1", "ttl={"])
def test_bad_assignments(bad: str) -> None:
    with pytest.raises(BadInput):
        apply_assignments({}, [bad], [])


def test_setting_below_a_scalar_is_refused() -> None:
    with pytest.raises(BadInput, match="ttl is 30, not a mapping"):
        apply_assignments(CONFIG, ["ttl.x=1"], [])


def test_merge_patch_deletes_with_null() -> None:
    patched = merge_patch(CONFIG, {"postgresql": {"parameters": None, "use_slots": True}, "x": 1})
    assert patched["postgresql"] == {"use_pg_rewind": True, "use_slots": True}
    assert patched["x"] == 1


def test_diff_is_a_unified_diff_of_the_yaml() -> None:
    lines = diff({"ttl": 30, "loop_wait": 10}, {"ttl": 40, "loop_wait": 10})
    assert lines[:2] == ["--- before", "+++ after"]
    assert "-ttl: 30" in lines and "+ttl: 40" in lines
    assert diff(CONFIG, dict(CONFIG)) == []


def test_show_config(cli: Cli) -> None:
    result = cli("show-config")
    assert result.exit_code == 0
    assert yaml.safe_load(result.output) == CONFIG
    assert cli("show-config", "-f", "json").output.lstrip().startswith("{")


def test_edit_config_with_set_and_force_writes_with_cas(cli: Cli, store: MemoryStore) -> None:
    result = cli("edit-config", "-s", "ttl=40", "-p", "work_mem=16MB", "--force")
    assert result.exit_code == 0, result.output
    assert "-ttl: 30" in result.output and "+ttl: 40" in result.output
    assert "Configuration changed" in result.output
    stored = get(store, "config")
    assert stored["ttl"] == 40 and stored["postgresql"]["parameters"]["work_mem"] == "16MB"


def test_edit_config_asks_and_a_no_writes_nothing(cli: Cli, store: MemoryStore) -> None:
    result = cli("edit-config", "-s", "ttl=40", input="n\n")
    assert result.exit_code == 1
    assert "Apply these changes? [y/N]" in result.output
    assert get(store, "config") == CONFIG


def test_no_change_is_said(cli: Cli) -> None:
    result = cli("edit-config", "-s", "ttl=30", "--force")
    assert result.exit_code == 0
    assert result.output.strip() == "Not changed"


def test_an_invalid_config_is_refused_before_writing(cli: Cli, store: MemoryStore) -> None:
    # (ttl=5 with loop_wait 10 and retry_timeout 10 is accepted and adjusted, as Patroni does.)
    result = cli("edit-config", "-s", "ttl=1", "--force")
    assert result.exit_code == 2
    assert "the new config is not valid" in result.output and "config.ttl" in result.output
    assert get(store, "config") == CONFIG


def test_a_concurrent_change_is_never_overwritten(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    def confirm_and_race(*args: Any, **kwargs: Any) -> bool:
        put(store, "config", {**CONFIG, "loop_wait": 5})  # someone else, meanwhile
        return True

    monkeypatch.setattr(click, "confirm", confirm_and_race)
    result = cli("edit-config", "-s", "ttl=40")
    assert result.exit_code == 1
    assert "changed in etcd while you were editing it" in result.output
    assert get(store, "config")["ttl"] == 30


def test_editor_path(cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    def fake_edit(text: str, **kwargs: Any) -> str:
        assert "ttl: 30" in text
        return text.replace("ttl: 30", "ttl: 45")

    monkeypatch.setattr(click, "edit", fake_edit)
    result = cli("edit-config", input="y\n")
    assert result.exit_code == 0, result.output
    assert get(store, "config")["ttl"] == 45


def test_editor_closed_without_saving(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    monkeypatch.setattr(click, "edit", lambda text, **kwargs: None)
    assert cli("edit-config").output.strip() == "Not changed"


def test_apply_and_replace_files(cli: Cli, store: MemoryStore, tmp_path: Path) -> None:
    patch = tmp_path / "patch.yml"
    patch.write_text("postgresql:\n  parameters:\n    max_connections: null\nttl: 60\n")
    result = cli("edit-config", "--apply", str(patch), "--force")
    assert result.exit_code == 0, result.output
    assert get(store, "config")["postgresql"] == {"use_pg_rewind": True, "parameters": {}}
    whole = tmp_path / "whole.yml"
    whole.write_text("ttl: 30\nloop_wait: 10\nretry_timeout: 10\n")
    result = cli("edit-config", "--replace", str(whole), "--force", "-q")
    assert result.exit_code == 0
    assert "+++" not in result.output
    assert get(store, "config") == {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}


def test_apply_from_stdin_needs_force(cli: Cli, store: MemoryStore) -> None:
    assert cli("edit-config", "--apply", "-", input="ttl: 50\n").exit_code == 2
    result = cli("edit-config", "--apply", "-", "--force", input="ttl: 50\n")
    assert result.exit_code == 0, result.output
    assert get(store, "config")["ttl"] == 50
