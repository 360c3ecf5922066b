"""A three-node haagent cluster on loopback addresses: etcd, agents, PostgreSQL, HAProxy.

Used by the local lab (`dev/lab up`), the end-to-end tests and the failure
suite.  Every process is started here and stopped here, by its pid.  Agents
and PostgreSQL run as the `postgres` OS user when started by root.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from haagent.config.model import Address
from haagent.rest_client import ApiUnreachable, Reply, RestClient
from haagent_lab.lab import processes
from haagent_lab.lab.etcd import EtcdCluster, make_cluster
from haagent_lab.lab.haproxy import STATS_PASSWORD, STATS_USER, haproxy_config
from haagent_lab.lab.netfault import node_group
from haagent_lab.lab.processes import Process, ProcessError
from haagent_lab.lab.watchdog_simulator import start_simulator

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The lab's throwaway credentials, one per role; never use them elsewhere.
LAB_PASSWORD = "lab-secret"  # the superuser, postgres
LAB_REPLICATION_PASSWORD = "lab-replication-secret"
LAB_REWIND_PASSWORD = "lab-rewind-secret"
LAB_STATS = ("haagent", "lab-stats-secret")  # HAProxy's stats page


@dataclass
class LabNode:
    name: str
    host: str
    pg_port: int
    api_port: int
    base: Path
    agent: Process | None = None
    watchdog_sim: Process | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def watchdog_socket(self) -> Path:
        return self.base / "watchdog.sock"

    @property
    def watchdog_events(self) -> Path:
        return self.base / "watchdog-events.jsonl"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def config_path(self) -> Path:
        return self.base / "haagent.yml"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.pg_port} user=postgres password={LAB_PASSWORD} "
            "dbname=postgres connect_timeout=2"
        )

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        """`method path` on this node's REST API with a JSON `body`, through haagent's own
        REST client (from any thread); raises ApiUnreachable when it does not answer."""

        async def send() -> Reply:
            async with RestClient() as client:
                return await client.call(method, self.api_url, path, body, timeout=timeout)

        return asyncio.run(send())

    def api(self, path: str = "/patroni", timeout: float = 1.0) -> tuple[int, Any]:
        """GET a REST path: (status code, JSON or text); (0, error) when it does not answer."""
        try:
            reply = self.call("GET", path, timeout=timeout)
        except ApiUnreachable as e:
            return 0, str(e)
        document = reply.json()
        return reply.status, reply.text if document is None else document


@dataclass
class LabCluster:
    base: Path
    names: Sequence[str] = ("node1", "node2", "node3")
    hosts: Sequence[str] = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
    scope: str = "haagent-lab"
    pg_port: int | None = 5432  # None: a free port per node
    api_port: int | None = 8008
    etcd_ports: tuple[int, int] | None = (2379, 2380)
    dynamic: Mapping[str, Any] = field(default_factory=dict)
    # Watchdog settings: merged over mode off, or over the simulator's settings.
    watchdog: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = "postgres"
    # Run haagent's watchdog simulator per node (watchdog `driver: testing`, mode required).
    watchdog_simulator: bool = False
    haproxy_ports: tuple[int, int, int] | None = None  # (write, read, stats)
    haproxy_host: str = "127.0.0.1"
    # Run each node's processes with its own OS group so haagent_lab.lab.netfault can cut
    # its network (needs dev/setup as root and NetworkFaults.prepare() before start).
    node_groups: bool = False
    python: str = sys.executable
    # Changes each node's config before it is written (tests: TLS, pg_hba, ...).
    configure: Callable[[LabNode, dict[str, Any]], None] | None = None
    # Another cluster's etcd to use (two scopes on one etcd), which that cluster starts and
    # stops; None: this cluster runs its own.
    shared_etcd: EtcdCluster | None = None
    nodes: dict[str, LabNode] = field(init=False)
    etcd: EtcdCluster = field(init=False)
    haproxy: Process | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        taken: set[tuple[str, int]] = set()

        def port(host: str, fixed: int | None) -> int:
            if fixed is not None:
                return fixed
            while True:
                candidate = processes.free_port(host)
                if (host, candidate) not in taken:
                    taken.add((host, candidate))
                    return candidate

        self.nodes = {}
        for name, host in zip(self.names, self.hosts, strict=True):
            self.nodes[name] = LabNode(
                name=name,
                host=host,
                pg_port=port(host, self.pg_port),
                api_port=port(host, self.api_port),
                base=self.base / name,
            )
        if self.shared_etcd is not None:
            self.etcd = self.shared_etcd
            return
        fixed = self.etcd_ports or (None, None)
        self.etcd = make_cluster(
            self.base / "etcd",
            list(self.hosts),
            user=self.user,
            names=[f"etcd-{n}" for n in self.names],
            client_ports=[port(h, fixed[0]) for h in self.hosts],
            peer_ports=[port(h, fixed[1]) for h in self.hosts],
            groups=[self.group_of(n) for n in self.names],
        )

    def group_of(self, name: str) -> str | None:
        """The OS group node `name` runs with (None unless `node_groups`)."""
        return node_group(list(self.names).index(name) + 1) if self.node_groups else None

    def index_of(self, name: str) -> int:
        """1-based node number, as the network fault helper counts nodes."""
        return list(self.names).index(name) + 1

    # --- configuration

    def dynamic_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "ttl": 30,
            "loop_wait": 10,
            "retry_timeout": 10,
            "maximum_lag_on_failover": 1048576,
            "postgresql": {
                "use_pg_rewind": True,
                "use_slots": True,
                "parameters": {
                    "wal_level": "replica",
                    "hot_standby": "on",
                    "wal_log_hints": "on",
                    "max_wal_senders": 10,
                    "max_replication_slots": 10,
                    "wal_keep_size": "128MB",
                },
            },
        }
        for key, value in self.dynamic.items():
            if isinstance(value, Mapping) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def node_config(self, node: LabNode) -> dict[str, Any]:
        config = self._node_config(node)
        if self.configure is not None:
            self.configure(node, config)
        return config

    def _node_config(self, node: LabNode) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "namespace": "/service/",
            "name": node.name,
            "restapi": {
                "listen": f"{node.host}:{node.api_port}",
                "connect_address": f"{node.host}:{node.api_port}",
            },
            "etcd3": {"hosts": [str(m.client) for m in self.etcd.members]},
            "bootstrap": {
                "dcs": self.dynamic_config(),
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": [
                    "local all all scram-sha-256",
                    "host replication replicator 127.0.0.0/8 scram-sha-256",
                    "host all all 127.0.0.0/8 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": f"{node.host}:{node.pg_port}",
                "connect_address": f"{node.host}:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(PG_BIN),
                "pgpass": str(node.base / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": LAB_PASSWORD},
                    "replication": {"username": "replicator", "password": LAB_REPLICATION_PASSWORD},
                    "rewind": {"username": "rewind_user", "password": LAB_REWIND_PASSWORD},
                },
                "parameters": {"unix_socket_directories": str(node.base)},
            },
            "watchdog": self.watchdog_settings(node),
            "tags": dict(node.tags),
            "log": {"level": "INFO"},
        }

    def watchdog_settings(self, node: LabNode) -> dict[str, Any]:
        if not self.watchdog_simulator:
            return {"mode": "off", **self.watchdog}
        return {
            "mode": "required",
            "driver": "testing",
            "device": str(node.watchdog_socket),
            "safety_margin": 5,
            **self.watchdog,
        }

    def start_watchdog_simulator(self, name: str) -> Process:
        node = self.nodes[name]
        if node.watchdog_sim is not None and node.watchdog_sim.alive():
            return node.watchdog_sim
        node.watchdog_socket.unlink(missing_ok=True)
        node.watchdog_sim = start_simulator(
            node.watchdog_socket,
            node.base / "watchdog-simulator.log",
            user=self.user,
            node=name,
            kill_peer=True,
            pgdata=[node.data_dir],
            events=node.watchdog_events,
            python=self.python,
        )
        return node.watchdog_sim

    def write_configs(self) -> None:
        for node in self.nodes.values():
            processes.make_dir(node.base, self.user, 0o700)
            self._write_private(
                node.config_path, yaml.safe_dump(self.node_config(node), sort_keys=False)
            )

    def _write_private(self, path: Path, text: str) -> None:
        """A file only its owner (the lab's user) can read: configs hold passwords."""
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
        self._own(path)

    def _own(self, path: Path) -> None:
        if self.user is not None and os.geteuid() == 0:
            os.chown(path, *processes.user_ids(self.user))

    # --- processes

    def start_agent(self, name: str) -> Process:
        node = self.nodes[name]
        if node.agent is not None and node.agent.alive():
            return node.agent
        if self.watchdog_simulator:
            self.start_watchdog_simulator(name)
        node.agent = processes.start(
            f"haagent {name}",
            [self.python, "-m", "haagent", str(node.config_path)],
            node.base / "haagent.log",
            user=self.user,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            group=self.group_of(name),
        )
        return node.agent

    def stop_agent(self, name: str, timeout: float = 60.0) -> None:
        agent = self.nodes[name].agent
        if agent is not None:
            agent.stop(timeout=timeout)

    def kill_agent(self, name: str) -> None:
        agent = self.nodes[name].agent
        if agent is not None:
            agent.kill()

    def kill_postmaster(self, name: str) -> int | None:
        pid = self.nodes[name].postmaster_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
        return pid

    def stop_postgres(self, name: str) -> None:
        """Stop a PostgreSQL the agent left running (fast shutdown, by the postmaster's pid)."""
        node = self.nodes[name]
        pid = node.postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def start_haproxy(self) -> Process:
        assert self.haproxy_ports is not None
        path = self.base / "haproxy.cfg"
        self._write_private(
            path,
            haproxy_config(
                [(n.name, Address(n.host, n.pg_port), n.api_port) for n in self.nodes.values()],
                bind_host=self.haproxy_host,
                ports=self.haproxy_ports,
            ),
        )
        user, password = LAB_STATS
        self.haproxy = processes.start(
            "haproxy", ["/usr/sbin/haproxy", "-db", "-f", str(path)], self.base / "haproxy.log",
            user=self.user, env={**os.environ, STATS_USER: user, STATS_PASSWORD: password},
        )  # fmt: skip
        return self.haproxy

    @property
    def stats_url(self) -> str:
        """HAProxy's stats page (its user and password: LAB_STATS)."""
        assert self.haproxy_ports is not None
        return f"http://{self.haproxy_host}:{self.haproxy_ports[2]}/"

    def start(self, timeout: float = 120.0, *, wait: bool = True) -> None:
        """Start etcd (unless shared), the agents and HAProxy; with `wait`, until one
        primary runs and every other node streams from it."""
        processes.make_dir(self.base, self.user, 0o755)
        if self.shared_etcd is None:
            self.etcd.start()
        self.write_configs()
        for name in self.nodes:
            self.start_agent(name)
        if self.haproxy_ports is not None:
            self.start_haproxy()
        if wait:
            self.wait_healthy(timeout)

    def stop(self) -> None:
        """Stop everything this cluster started: agents (which stop PostgreSQL), HAProxy, etcd.

        The agents get SIGTERM together, not one after the other: stopped in turn, each
        replica would take over from the leader stopped before it, only to be stopped next.
        """
        errors: list[str] = []
        agents = {n: node.agent for n, node in self.nodes.items() if node.agent is not None}
        for name, agent in agents.items():
            try:
                agent.send_signal(signal.SIGTERM)
            except OSError as e:
                errors.append(f"{name}: {e}")
        for name, agent in agents.items():
            try:
                agent.finish(timeout=60.0)
            except (OSError, ProcessError) as e:
                errors.append(f"{name}: {e}")
        for name in self.nodes:
            self.stop_postgres(name)
        if self.haproxy is not None:
            self.haproxy.stop()
        for node in self.nodes.values():
            if node.watchdog_sim is not None:
                node.watchdog_sim.stop()
        if self.shared_etcd is None:
            self.etcd.stop()
        if errors:
            raise ProcessError("; ".join(errors))

    # --- observation

    def statuses(self) -> dict[str, tuple[int, Any]]:
        return {name: node.api("/patroni") for name, node in self.nodes.items()}

    def primaries(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.api("/primary")[0] == 200)

    def leader(self) -> str | None:
        primaries = self.primaries()
        return primaries[0] if len(primaries) == 1 else None

    def streaming_replicas(self) -> list[str]:
        """Members streaming from the leader, as its pg_stat_replication says."""
        leader = self.leader()
        if leader is None:
            return []
        code, body = self.nodes[leader].api("/patroni")
        if code != 200 or not isinstance(body, dict):
            return []
        rows = body.get("replication") or []
        return sorted(
            r["application_name"]
            for r in rows
            if isinstance(r, dict)
            and r.get("state") == "streaming"
            and r.get("application_name") in self.nodes  # not a logical consumer
        )

    def healthy(self) -> bool:
        """One primary, every other node streaming from it, and the DCS showing them caught up."""
        leader = self.leader()
        if leader is None or len(self.streaming_replicas()) != len(self.nodes) - 1:
            return False
        code, body = self.nodes[leader].api("/cluster")
        if code != 200 or not isinstance(body, dict):
            return False
        members = [m for m in body.get("members", []) if m.get("name") != leader]
        return len(members) == len(self.nodes) - 1 and all(
            m.get("state") in ("running", "streaming")
            and isinstance(m.get("lag"), int)
            and m["lag"] <= 1048576
            for m in members
        )

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float) -> float:
        """Poll until `predicate()`; returns the seconds it took.  Raises with agents' log tails."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.1)
        raise ProcessError(f"timed out after {timeout:.0f}s waiting for {what}\n" + self.tails())

    def wait_healthy(self, timeout: float = 120.0) -> float:
        return self.wait_for(self.healthy, "one primary and every replica streaming", timeout)

    def tails(self, lines: int = 15) -> str:
        parts = []
        for name, node in self.nodes.items():
            agent = node.agent
            tail = agent.log_tail(lines) if agent is not None else "(not started)"
            parts.append(f"--- {name} agent log:\n{tail}")
        return "\n".join(parts)
