"""Hostile values in every key of the cluster prefix, on the in-memory store and on real etcd.

A value nobody would write (JSON nested a million levels deep, a number past
float range, a string where an object belongs, more than a megabyte) must be
logged once with its key path and treated as absent: the watch keeps running,
the other keys keep decoding, this member keeps writing, and `haactl`'s read of
the same keys works.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from dcs_harness import Harness

from haagent.dcs import codec
from haagent.dcs.client import KVDCS
from haagent.dcs.kv import KeyValue

DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE: dict[str, bytes] = {
    "members/deep": DEEP,
    "members/deepobj": b'{"tags":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
    "members/inf": b'{"conn_url":"postgres://h:5432/postgres","xlog_location":1e309}',
    "members/huge": b'{"conn_url":"' + b"x" * 1_200_000 + b'"}',
    "members/types": b'{"conn_url":{"a":1},"api_url":[1],"tags":"nofailover"}',
    "members/lsn": b'{"xlog_location":-5,"timeline":99999999999999999999}',
    "leader": b"\xff\xfe",
    "config": b'{"ttl":1e309,"loop_wait":"x"}',
    "sync": DEEP,
    "failover": b'{"leader":"a","scheduled_at":"9999-12-31T23:59:59-14:00"}',
    "history": b"[[1e309, 5, 7]]",
    "status": b'{"optime":1e400}',
    "failsafe": b'{"node1":{"url":1}}',
    "initialize": b"not a number",
}
GOOD = (
    b'{"conn_url":"postgres://127.0.0.12:5432/postgres","api_url":"http://127.0.0.12:8008/patroni",'
    b'"state":"running","role":"replica","version":"4.1.0"}'
)


async def wait_member(client: KVDCS, name: str, present: bool = True) -> None:
    """Poll the client's view (a member key's change does not wake the loop)."""
    for _ in range(1000):
        if (name in client.view().members) == present:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"member {name} {'never appeared' if present else 'stayed'} in the view")


async def test_hostile_values_are_absent_and_the_view_keeps_up(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="haagent.dcs")
    watcher = await harness.open("node1")
    for key, value in HOSTILE.items():
        await harness.raw_put(key, value)
    # A good key written after the hostile ones still reaches the watcher's view.
    await harness.raw_put("members/node2", GOOD)
    await wait_member(watcher, "node2")
    view = watcher.view()
    assert sorted(view.members) == ["node2"]
    assert view.leader is None and view.config is None and view.sync is None
    assert view.failover is None and view.history == () and view.status.optime is None
    assert view.failsafe is None and view.initialize is None
    # The revisions of keys written by compare-and-swap stay known, so they can be replaced.
    assert view.config_revision > 0 and view.sync_revision > 0 and view.failover_revision > 0
    # This member keeps writing: its member key, the status, the failover key.
    await watcher.touch_member({"conn_url": "postgres://127.0.0.11:5432/postgres"})
    await wait_member(watcher, "node1")
    await watcher.write_status(100, {})
    assert await watcher.clear_failover(expected_revision=view.failover_revision)
    # Each bad key is logged once, with its path, however often the view is rebuilt.
    for _ in range(3):
        await harness.raw_put("members/node3", GOOD)
        await wait_member(watcher, "node3")
        await harness.raw_delete("members/node3")
        await wait_member(watcher, "node3", present=False)
    for key in HOSTILE:
        path = f"{harness.prefix}{key} "
        lines = [r.getMessage() for r in caplog.records if path in r.getMessage()]
        assert len(lines) == 1, (key, lines)
        assert "counts as absent" in lines[0]


async def test_a_one_off_read_of_hostile_keys_decodes(harness: Harness) -> None:
    """`haactl list` reads the prefix once and decodes it without a cache."""
    for key, value in HOSTILE.items():
        await harness.raw_put(key, value)
    await harness.raw_put("members/node2", GOOD)
    raw = await harness.raw()
    kvs = {k: KeyValue(k.encode(), v, 1, 1, 1, 0) for k, v in raw.items()}
    view = codec.decode_view(kvs, prefix=harness.prefix)
    assert list(view.members) == ["node2"]
