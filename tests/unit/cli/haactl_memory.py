"""`haactl` against an in-memory etcd holding a three-node cluster "stampede".

node1 leads (timeline 2), node2 streams with no lag, node3 lags 32 MiB.  The members'
api_url point at a closed port, so REST calls fail at once and commands fall back to
etcd.  `ReactingKV` plays the agents where a test needs an outcome: a written `failover`
key moves the leader key, a written `pause` shows up in the member keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result

from haagent.cli.context import Connection, Ctl
from haagent.cli.main import main
from haagent.dcs import codec
from haagent.dcs.kv import KVBackend, Op, Put, TxnResult
from haagent.dcs.memory import MemoryKV, MemoryStore
from haagent.dcs.model import HistoryEntry
from haagent_lab.lab.processes import free_port

SCOPE = "stampede"
PREFIX = f"/service/{SCOPE}/"
SYSID = "7300112233445566778"
LEADER_LSN = 0x5000060
MIB = 1024 * 1024
CONFIG: dict[str, Any] = {
    "ttl": 30,
    "loop_wait": 10,
    "retry_timeout": 10,
    "maximum_lag_on_failover": 1048576,
    "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": 100}},
}


def member_json(n: int, role: str, api_port: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conn_url": f"postgres://127.0.0.1{n}:5432/postgres",
        "api_url": f"http://127.0.0.1:{api_port}/patroni",
        "state": "running",
        "role": role,
        "version": "0.1.0",
        "timeline": 2,
    }
    data.update(extra)
    return data


def put(store: MemoryStore, key: str, value: bytes | str | Mapping[str, Any] | list[Any]) -> None:
    if isinstance(value, str):
        raw = value.encode()
    elif isinstance(value, bytes):
        raw = value
    else:
        raw = codec.dumps(value)
    store.txn([], [Put((PREFIX + key).encode(), raw)], [])


def get(store: MemoryStore, key: str) -> Any:
    kv = store.get((PREFIX + key).encode())
    return None if kv is None else json.loads(kv.value) if kv.value[:1] in b"{[" else kv.value


def seed(store: MemoryStore, api_port: int) -> None:
    put(store, "initialize", SYSID)
    put(store, "config", CONFIG)
    put(store, "leader", "node1")
    put(store, "members/node1", member_json(1, "primary", api_port, xlog_location=LEADER_LSN))
    put(
        store,
        "members/node2",
        member_json(
            2, "replica", api_port, replication_state="streaming", xlog_location=LEADER_LSN
        ),
    )
    put(
        store,
        "members/node3",
        member_json(
            3,
            "replica",
            api_port,
            replication_state="streaming",
            xlog_location=LEADER_LSN - 32 * MIB,
        ),
    )
    put(store, "status", {"optime": LEADER_LSN, "slots": {}, "retain_slots": []})
    history = [
        HistoryEntry(
            1, 0x3000000, "no recovery target specified", "2024-09-24T09:22:33+00:00", "node1"
        )
    ]
    put(store, "history", codec.encode_history(history))


class ReactingKV(MemoryKV):
    """A client that also plays the agents' part after some writes."""

    def __init__(self, store: MemoryStore, react: bool) -> None:
        super().__init__(store, "haactl")
        self.store = store
        self.react = react

    async def txn(
        self, compare: Sequence[Any], success: Sequence[Op], failure: Sequence[Op] = (), *,
        budget: float,
    ) -> TxnResult:  # fmt: skip
        result = await super().txn(compare, success, failure, budget=budget)
        if not (self.react and result.succeeded):
            return result
        for op in success:
            if isinstance(op, Put) and op.key == (PREFIX + "failover").encode():
                self._hand_over(json.loads(op.value))
            if isinstance(op, Put) and op.key == (PREFIX + "config").encode():
                self._show_pause(json.loads(op.value).get("pause", False))
        return result

    def _hand_over(self, request: dict[str, Any]) -> None:
        if not request or request.get("scheduled_at"):
            return
        new = request.get("member") or "node2"
        old = request.get("leader")
        put(self.store, "leader", new)
        put(self.store, f"members/{new}", {**get(self.store, f"members/{new}"), "role": "primary"})
        if old:
            put(
                self.store,
                f"members/{old}",
                {**get(self.store, f"members/{old}"), "role": "replica"},
            )
        put(self.store, "failover", "{}")

    def _show_pause(self, pause: bool) -> None:
        for name in ("node1", "node2", "node3"):
            data = get(self.store, f"members/{name}")
            if pause:
                data["pause"] = True
            else:
                data.pop("pause", None)
            put(self.store, f"members/{name}", data)


@dataclass
class Cli:
    store: MemoryStore
    react: bool = False

    def backend(self, conn: Connection) -> KVBackend:
        return ReactingKV(self.store, self.react)

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        scope: bool = True,
        env: dict[str, str] | None = None,
    ) -> Result:
        runner = CliRunner()
        argv = (["--scope", SCOPE] if scope else []) + list(args)
        obj = Ctl(backend_factory=self.backend)
        return runner.invoke(main, argv, input=input, obj=obj, env=env)


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def store(closed_port: int) -> MemoryStore:
    memory = MemoryStore()
    seed(memory, closed_port)
    return memory


@pytest.fixture
def cli(store: MemoryStore) -> Cli:
    return Cli(store)


@pytest.fixture
def reacting_cli(store: MemoryStore) -> Cli:
    return Cli(store, react=True)


Edit = Callable[[dict[str, Any]], None]


def edit_member(store: MemoryStore, name: str, **changes: Any) -> None:
    data = get(store, f"members/{name}")
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    put(store, f"members/{name}", data)
