"""Fuzz: random and adversarial values in every key of a running cluster's etcd prefix.

A three-node cluster (real etcd, agents, PostgreSQL on 127.0.0.11-13) runs while each
round writes a value into every key under its prefix: `leader`, every `members/<name>`
and a stranger's, `config`, `initialize`, `status`, `history`, `sync`, `failover`,
`failsafe`, `optime/leader` and keys nobody knows.  Values are JSON drawn by
hypothesis (any shape, and objects with the keys Patroni writes holding values of the
wrong type or range) and adversarial bytes (nesting 100,000 deep, 1e309, more than a
megabyte, invalid UTF-8, names with line breaks, URLs that are not a member's API).

After each round, on every node:
- the agent still decides: it is alive, its decision counter moves on, and its log
  never says "HA cycle failed";
- every health endpoint answers 200 or 503 with the status document (a correct
  "no"), never the fail-closed error or another 5xx; /patroni and /cluster answer 200.
Once the original keys are restored, the cluster is healthy again (one primary, every
replica streaming).

Values that would legitimately change the cluster's behaviour rather than be
refused are left out: a `config` that decodes (it could set loop_wait to an hour or
pause the cluster) and an `initialize` that decodes (another cluster's system id).
The examples are derandomized, so a CI failure replays.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from haagent.dcs import codec
from haagent.dcs.channel import EtcdChannel
from haagent.dcs.etcd import EtcdKV
from haagent.dcs.kv import Delete, KeyValue, Put, prefix_range_end
from haagent_lab.lab.cluster import LabCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 20
SETTLE = 2.5  # seconds after each round's writes: more than loop_wait (2)

DEEP = b"[" * 100_000 + b"]" * 100_000
RAW = [
    DEEP,
    b'{"a":' * 40 + b"1" + b"}" * 40,  # deeper than the decoder's 32 levels
    b"1e309",
    b'{"xlog_location":1e309,"timeline":1e309}',
    b"\xff\xfe\x00",
    b"",
    b"null",
    b"[]",
    b'"\\u0000\\n"',
    b"x" * 1_100_000,  # over the 1 MiB value limit
    b'{"conn_url":"postgres://127.0.0.1:5432/x"}' + b" " * 1_048_600,
]
WEIRD = [
    "node9\nhba_file = '/tmp/evil'",
    "node1",
    "node2",
    "",
    2**64,
    -1,
    10**30,
    1.5,
    True,
    "postgres://127.0.0.12:1/postgres",
    "postgres://127.0.0.11%0ahba_file=x:5432/postgres",
    "http://127.0.0.1:1/latest/meta-data",
    "file:///etc/passwd",
    "http://user:pw@127.0.0.1:1/patroni",
    "9999-12-31T23:59:59-14:00",
    "2020-01-01T00:00:00",
    "0/3000000",
]
FIELDS = {
    "members": [
        "conn_url", "api_url", "state", "role", "version", "tags", "xlog_location", "timeline",
        "replication_state", "receive_lsn", "replay_lsn", "pending_restart",
        "scheduled_restart", "pause",
    ],
    "config": [
        "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "synchronous_mode",
        "failsafe_mode", "pause", "postgresql", "slots", "check_timeline",
    ],
    "status": ["optime", "slots", "retain_slots", "timeline", "lost_slots"],
    "sync": ["leader", "sync_standby", "quorum"],
    "failover": ["leader", "member", "candidate", "scheduled_at"],
    "failsafe": ["node1", "node2", "node3", "node9"],
    "history": [],
}  # fmt: skip
KEYS = [
    "leader", "members/node1", "members/node2", "members/node3", "members/node9", "config",
    "initialize", "status", "history", "sync", "failover", "failsafe", "optime/leader",
    "unknown", "members/", "sync/extra",
]  # fmt: skip
HEALTH = [
    "/", "/primary", "/leader", "/replica", "/replica?lag=1MB", "/read-only", "/health",
    "/sync", "/async", "/liveness", "/readiness", "/replica?lag=" + "9" * 400,
]  # fmt: skip
DOCUMENTS = ["/patroni", "/cluster", "/history"]

# Random text never holds ':' or '/', so no drawn value is a URL: the agents call the
# addresses they read, and every URL above is on loopback.
texts = st.text(alphabet=st.characters(blacklist_characters=":/"), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(WEIRD),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(texts | st.sampled_from(WEIRD[:4]), children, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def value_for(key: str) -> st.SearchStrategy[bytes]:
    if key == "leader":
        names = st.sampled_from(["node1", "node2", "node3", "node9", "node1\nx", "", "a b"])
        return names.map(str.encode) | st.sampled_from(RAW)
    family = key.split("/", 1)[0]
    typed: list[st.SearchStrategy[bytes]] = []
    fields = FIELDS.get(family)
    if fields:
        objects = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))
        typed.append(objects.map(dumps))
    if family == "history":
        rows = st.lists(st.lists(json_values, max_size=6), max_size=4)
        typed.append(rows.map(dumps))
    return st.one_of(st.sampled_from(RAW), json_values.map(dumps), *typed)


def decodes(key: str, value: bytes) -> bool:
    """Whether the agents would take `value` as a valid `key` (a legitimate change)."""
    quiet = logging.getLogger("haagent")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        view = codec.decode_view({key: KeyValue(key.encode(), value, 1, 1, 1, 0)})
    finally:
        quiet.setLevel(level)
    return (view.config if key == "config" else view.initialize) is not None


def hostile_rounds() -> st.SearchStrategy[dict[str, bytes]]:
    def refused(key: str) -> st.SearchStrategy[bytes]:
        values = value_for(key)
        if key in ("config", "initialize"):
            return values.map(lambda v, k=key: b"[1e309]" if decodes(k, v) else v)  # type: ignore[misc]
        return values

    return st.fixed_dictionaries({key: refused(key) for key in KEYS})


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def decisions(node_url: str) -> float:
    code, body = get(node_url + "/metrics")
    assert code == 200
    found = re.findall(rb"^haagent_decision_total\{[^}]*\} ([0-9.e+]+)$", body, re.M)
    return sum(float(x) for x in found)


def check_endpoints(lab: LabCluster, round_no: int) -> None:
    for name, node in lab.nodes.items():
        for path in HEALTH:
            code, body = get(node.api_url + path)
            where = f"round {round_no}: {name} GET {path}"
            assert code in (200, 503), f"{where} answered {code}: {body[:200]!r}"
            document = json.loads(body)  # a status document, not the fail-closed text
            assert isinstance(document, dict) and "state" in document, where
        for path in DOCUMENTS:
            code, body = get(node.api_url + path)
            assert code == 200, (
                f"round {round_no}: {name} GET {path} answered {code}: {body[:200]!r}"
            )


def test_hostile_values_in_every_key_never_stop_the_cluster(
    lab_factory: Callable[..., LabCluster],
) -> None:
    lab = lab_factory()
    lab.start(timeout=120)
    prefix = f"/service/{lab.scope}/".encode()
    kv = EtcdKV(EtcdChannel(lab.etcd.hosts))
    loop = asyncio.new_event_loop()

    def run(coro: Any) -> Any:
        return loop.run_until_complete(coro)

    try:
        _, originals = run(kv.range(prefix, prefix_range_end(prefix), budget=5))
        kept = {kv_.key: kv_.value for kv_ in originals if not kv_.lease}
        counts = {name: decisions(node.api_url) for name, node in lab.nodes.items()}
        started = time.monotonic()
        rounds: list[int] = []

        @settings(
            max_examples=ROUNDS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(values=hostile_rounds())
        def one_round(values: dict[str, bytes]) -> None:
            rounds.append(len(rounds) + 1)
            for key, value in values.items():  # one request each: etcd takes 1.5 MiB at most
                run(kv.txn([], [Put(prefix + key.encode(), value)], budget=5))
            time.sleep(SETTLE)
            for name, node in lab.nodes.items():
                assert node.agent is not None and node.agent.alive(), f"{name}'s agent exited"
            check_endpoints(lab, rounds[-1])

        one_round()
        fuzzed = time.monotonic() - started
        for name, node in lab.nodes.items():
            now = decisions(node.api_url)
            # loop_wait is 2 s: an agent that kept deciding made a decision every few seconds
            assert now - counts[name] >= len(rounds) * SETTLE / 6, (name, counts[name], now)
            assert node.agent is not None
            log = node.agent.log_tail(100_000)
            for mark in ("HA cycle failed", "Traceback"):
                at = log.find(mark)
                assert at < 0, f"{name}: {log[max(0, at - 500) : at + 3000]}"

        # Restore: the original unleased keys back, everything else written here deleted
        # (the agents rewrite their member keys, and race for a leader key of their own).
        _, now_there = run(kv.range(prefix, prefix_range_end(prefix), budget=5))
        for item in now_there:
            if item.key in kept:
                run(kv.txn([], [Put(item.key, kept[item.key])], budget=5))
            else:
                run(kv.txn([], [Delete(item.key)], budget=5))
        healed = lab.wait_healthy(180)
        print(f"\n{len(rounds)} rounds of hostile values in {fuzzed:.0f}s; healthy {healed:.1f}s "
              "after the keys were restored")  # fmt: skip
    finally:
        run(kv.close())
        loop.close()
