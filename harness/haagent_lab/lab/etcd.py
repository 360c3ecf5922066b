"""Real etcd members on loopback addresses, for the local lab and the tests."""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haagent.config.model import Address
from haagent_lab.lab import processes
from haagent_lab.lab.processes import Process, ProcessError

ETCD_BINARY = "/usr/bin/etcd"


@dataclass(frozen=True)
class EtcdTls:
    """Server-side TLS for a test etcd: its certificate, key and the CA for client certificates."""

    cert: Path
    key: Path
    ca: Path
    client_cert_auth: bool = True


@dataclass
class EtcdMember:
    name: str
    client: Address
    peer: Address
    data_dir: Path
    log_path: Path
    tls: EtcdTls | None = None
    extra_args: tuple[str, ...] = ()
    group: str | None = None  # the lab node's OS group (network faults), None: the user's
    process: Process | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.client}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.peer}"

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def healthy(self) -> bool:
        """True when this member answers /health with health true (it needs quorum)."""
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=0.5, context=context
            ) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return str(body.get("health")) == "true"


@dataclass
class EtcdCluster:
    """One or more etcd members started together as a new cluster."""

    members: list[EtcdMember]
    user: str | None = None
    token: str = "haagent-test"
    _started: bool = field(default=False, repr=False)

    @property
    def hosts(self) -> tuple[Address, ...]:
        return tuple(m.client for m in self.members)

    @property
    def endpoints(self) -> str:
        """Comma-separated `host:port` list, as `etcd3.hosts` accepts it."""
        return ",".join(str(m.client) for m in self.members)

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _argv(self, member: EtcdMember) -> list[str]:
        argv = [
            ETCD_BINARY,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self._initial_cluster(),
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]  # fmt: skip
        if member.tls is not None:
            argv += [
                "--cert-file", str(member.tls.cert),
                "--key-file", str(member.tls.key),
                "--trusted-ca-file", str(member.tls.ca),
            ]  # fmt: skip
            if member.tls.client_cert_auth:
                argv.append("--client-cert-auth")
        argv += member.extra_args
        return argv

    def start_member(self, index: int) -> EtcdMember:
        member = self.members[index]
        if member.alive():
            return member
        processes.make_dir(member.data_dir, self.user)
        member.process = processes.start(
            f"etcd {member.name}",
            self._argv(member),
            member.log_path,
            user=self.user,
            group=member.group,
        )
        return member

    def stop_member(self, index: int, kill: bool = False) -> None:
        member = self.members[index]
        if member.process is not None:
            if kill:
                member.process.kill()
            else:
                member.process.stop()

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        for i in range(len(self.members)):
            self.start_member(i)
        for member in self.members:
            processes.wait_for(
                member.healthy, f"etcd {member.name} to be healthy", timeout, member.process
            )
        self._started = True
        return self

    def wait_healthy(self, index: int, timeout: float = 30.0) -> None:
        member = self.members[index]
        processes.wait_for(
            member.healthy, f"etcd {member.name} to be healthy", timeout, member.process
        )

    def stop(self) -> None:
        errors: list[str] = []
        for member in self.members:
            try:
                if member.process is not None:
                    member.process.stop()
            except (OSError, ProcessError) as e:
                errors.append(f"{member.name}: {e}")
        if errors:
            raise ProcessError("could not stop etcd members: " + "; ".join(errors))

    def remove_data(self) -> None:
        for member in self.members:
            shutil.rmtree(member.data_dir, ignore_errors=True)


def make_cluster(
    base_dir: Path,
    hosts: Sequence[str],
    *,
    client_ports: Sequence[int] | None = None,
    peer_ports: Sequence[int] | None = None,
    user: str | None = None,
    tls: EtcdTls | None = None,
    extra_args: Sequence[str] = (),
    names: Sequence[str] | None = None,
    groups: Sequence[str | None] | None = None,
) -> EtcdCluster:
    """Describe (not start) an etcd cluster with one member per host.

    Ports default to free ones on each host, so several clusters can run side by side.
    """
    members = []
    for i, host in enumerate(hosts):
        name = names[i] if names else f"etcd{i + 1}"
        client_port = client_ports[i] if client_ports else processes.free_port(host)
        peer_port = peer_ports[i] if peer_ports else processes.free_port(host)
        members.append(
            EtcdMember(
                name=name,
                client=Address(host, client_port),
                peer=Address(host, peer_port),
                data_dir=base_dir / f"{name}.data",
                log_path=base_dir / f"{name}.log",
                tls=tls,
                extra_args=tuple(extra_args),
                group=groups[i] if groups else None,
            )
        )
    return EtcdCluster(members, user=user)
