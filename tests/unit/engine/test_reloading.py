"""Which changed settings a reload applies, and which need a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from haagent.config.model import (
    Credentials,
    Etcd3Settings,
    PostgresqlSettings,
    RestApiSettings,
    Settings,
    Tags,
)
from haagent.engine.reloading import changed_settings, needing_restart

BASE = Settings(scope="demo", name="node1", postgresql=PostgresqlSettings(data_dir=Path("/d")))


def test_rest_security_tags_and_log_level_apply_now() -> None:
    new = replace(
        BASE,
        restapi=RestApiSettings(
            authentication=Credentials("admin", "x"), allowlist=("10.0.0.0/8",)
        ),
        tags=Tags(raw={"rack": "r1"}),
    )
    changed = changed_settings(BASE, new)
    assert changed == ["restapi.authentication", "restapi.allowlist", "tags"]
    assert needing_restart(changed) == []


def test_a_rotated_password_is_a_change() -> None:
    one = replace(BASE, restapi=RestApiSettings(authentication=Credentials("admin", "one")))
    two = replace(BASE, restapi=RestApiSettings(authentication=Credentials("admin", "two")))
    assert changed_settings(one, two) == ["restapi.authentication"]


def test_settings_read_at_start_need_a_restart() -> None:
    pg = replace(BASE.postgresql, parameters={"work_mem": "8MB"})
    new = replace(BASE, postgresql=pg, etcd3=Etcd3Settings(username="u", password="p"), name="n2")
    changed = changed_settings(BASE, new)
    assert sorted(needing_restart(changed)) == [
        "etcd3.password", "etcd3.username", "name", "postgresql.parameters"
    ]  # fmt: skip
    assert changed_settings(BASE, BASE) == []
