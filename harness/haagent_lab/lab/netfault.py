"""Network faults between lab nodes: nftables rules on loopback, through dev/netfault.

Each lab node N runs its etcd member, agent and PostgreSQL with the OS group
`haagent-nodeN` (see `node_group`); `dev/netfault prepare` tags every new
connection with the node that opened it, and `isolate` then drops every packet
between an isolated node and anything else, in both directions, including
connections that were open before the fault.  The helper is installed by
dev/setup as root and run with `sudo -n` by the postgres user; it only ever
touches its own two nftables tables, which `clear` removes.
"""

from __future__ import annotations

import grp
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

LIBEXEC = Path("/usr/local/lib/haagent-lab")
NETFAULT = LIBEXEC / "netfault"


class NetFaultError(RuntimeError):
    """The network fault helper is missing or refused to act."""


def node_group(index: int) -> str:
    """The OS group of lab node `index` (1-based)."""
    return f"haagent-node{index}"


def group_wrapper(group: str) -> Path:
    """The setgid setpriv copy that lets the postgres user run a command with `group`."""
    return LIBEXEC / f"as-{group}"


def group_argv(group: str, argv: list[str]) -> list[str]:
    """`argv` run with `group` as its real and effective group (no fork: same pid)."""
    return [str(group_wrapper(group)), f"--regid={group}", "--keep-groups", "--", *argv]


def unavailable_reason(groups: int = 3) -> str | None:
    """Why network faults cannot be injected here, or None when they can."""
    if not NETFAULT.exists():
        return f"{NETFAULT} is missing: run dev/setup as root"
    for index in range(1, groups + 1):
        group = node_group(index)
        try:
            grp.getgrnam(group)
        except KeyError:
            return f"OS group {group} is missing: run dev/setup as root"
        if os.geteuid() != 0 and not os.access(group_wrapper(group), os.X_OK):
            return (
                f"{group_wrapper(group)} is not executable by this user: run dev/setup as root, "
                "then start a new login session (group membership is read at login)"
            )
    return None


class NetworkFaults:
    """Inject and heal network faults; use as a context manager so the rules always go away."""

    def __init__(self, helper: Path = NETFAULT) -> None:
        self.helper = helper

    def _run(self, *args: str) -> None:
        argv = [str(self.helper), *args]
        if os.geteuid() != 0:
            argv = ["sudo", "-n", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if result.returncode != 0:
            raise NetFaultError(
                f"`{' '.join(argv)}` failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}; "
                "dev/setup (as root) installs the helper and its sudo rule"
            )

    def prepare(self) -> None:
        """Tag connections by node; must run before the lab's processes open connections."""
        self._run("prepare")

    def isolate(self, nodes: Mapping[int, str]) -> None:
        """Cut nodes (index -> address) off from everything else, each from the others too."""
        self._run("isolate", *(f"{index}={address}" for index, address in sorted(nodes.items())))

    def cut_ports(self, index: int, ports: Sequence[int]) -> None:
        """Drop every packet of the connections node `index` opens to these TCP ports."""
        self._run("cut-ports", str(index), *(str(p) for p in ports))

    def heal(self) -> None:
        self._run("heal")

    def clear(self) -> None:
        self._run("clear")

    def __enter__(self) -> NetworkFaults:
        self.prepare()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clear()
