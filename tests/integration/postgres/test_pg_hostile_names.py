"""Names and values from etcd (or the config) never write a setting into postgresql.conf.

A member name with a line break, written into etcd as the leader and as a member
key, once ended haagent's `# haagent-upstream:` comment and wrote a live
`hba_file = ...` line.  Real etcd holds the hostile keys here; real PostgreSQL
keeps its files and keeps running when handed such values.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pgnodes import Nodes

from haagent.config import ConfigError, load_settings
from haagent.dcs.channel import EtcdChannel
from haagent.dcs.etcd import EtcdDCS, EtcdKV
from haagent.dcs.kv import Put
from haagent.postgres.errors import ConfigurationError
from haagent.postgres.model import Upstream
from haagent_lab.lab.etcd import EtcdCluster

pytestmark = pytest.mark.integration

PREFIX = "/service/hostile/"
EVIL = "node9\nhba_file = '/tmp/evil_hba.conf'\n#"


async def test_member_names_with_line_breaks_are_absent_in_the_view(etcd: EtcdCluster) -> None:
    writer = EtcdKV(EtcdChannel(etcd.hosts))
    member = {"conn_url": "postgres://127.0.0.11:5432/postgres", "api_url": "http://h:8008/patroni"}
    keys = {
        "leader": EVIL.encode(),
        f"members/{EVIL}": json.dumps(member).encode(),
        "members/node1": json.dumps(member).encode(),
        "sync": json.dumps({"leader": "node1", "sync_standby": EVIL}).encode(),
        "failover": json.dumps({"leader": "node1", "member": EVIL}).encode(),
        "failsafe": json.dumps({EVIL: "http://h:8008/patroni"}).encode(),
    }
    await writer.txn([], [Put((PREFIX + k).encode(), v) for k, v in keys.items()], budget=5)
    client = EtcdDCS(EtcdChannel(etcd.hosts), name="node2", prefix=PREFIX, ttl=10)
    await client.open()
    try:
        view = client.view()
        assert view.leader is None
        assert list(view.members) == ["node1"]
        assert view.sync is None and view.failover is None and view.failsafe is None
    finally:
        await client.close()
        await writer.close()


def test_an_upstream_cannot_carry_a_line_break() -> None:
    for name, host in ((EVIL, "127.0.0.11"), ("node1", "127.0.0.11\nhba_file = '/x'")):
        with pytest.raises(ValueError):
            Upstream(name, host, 5432)
    with pytest.raises(ValueError):
        Upstream.from_conn_url("node1", "postgres://127.0.0.11%0ahba_file=x:5432/postgres")


async def test_control_characters_never_reach_the_files_of_a_running_server(
    nodes: Nodes,
) -> None:
    node = nodes.make("node1", "127.0.0.11")
    await node.pg.bootstrap(timeout=120)
    ctl = node.pg.instance
    conf_file = node.settings.data_dir / "postgresql.conf"
    before = await asyncio.to_thread(conf_file.read_text)
    for settings in (
        replace(
            node.settings, parameters={**node.settings.parameters, "work_mem": "4MB\nfsync = off"}
        ),
        replace(node.settings, pg_hba=("local all all trust\u2028host all all 0/0 trust",)),
    ):
        ctl.settings = settings
        with pytest.raises(ConfigurationError, match="control characters"):
            ctl.write_config()
    ctl.settings = node.settings
    assert await asyncio.to_thread(conf_file.read_text) == before
    assert "evil" not in await asyncio.to_thread((node.settings.data_dir / "pg_hba.conf").read_text)
    assert (await node.pg.status()).accepting


def test_the_config_refuses_them_with_the_key_path(tmp_path: Path) -> None:
    base = {
        "scope": "demo",
        "name": "node1",
        "restapi": {"listen": "127.0.0.11:8008"},
        "etcd3": {"hosts": "127.0.0.1:2379"},
        "postgresql": {
            "listen": "127.0.0.11:5432",
            "data_dir": str(tmp_path / "data"),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "r", "password": "p"},
            },
        },
    }
    cases = {
        "name": {**base, "name": "node 1"},
        "postgresql.parameters.work_mem": {
            **base,
            "postgresql": {**base["postgresql"], "parameters": {"work_mem": "4MB\nfsync = off"}},
        },
        "bootstrap.pg_hba[0]": {**base, "bootstrap": {"pg_hba": ["local all all peer\rx"]}},
        "bootstrap.dcs.postgresql.parameters.work_mem": {
            **base,
            "bootstrap": {"dcs": {"postgresql": {"parameters": {"work_mem": "1\u2029x"}}}},
        },
    }
    for key, data in cases.items():
        path = tmp_path / "n.yml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as caught:
            load_settings(path, {})
        assert caught.value.key == key, (key, str(caught.value))
