"""The DCS layer: Patroni's etcd v3 keys, leases and a watch-fed cluster view.

`create_dcs(settings)` gives the etcd implementation; `MemoryDCS` on a
`MemoryStore` is the in-memory one for tests and simulations.
"""

from __future__ import annotations

from haagent.config.model import DynamicConfig, Settings
from haagent.dcs.errors import (
    AuthenticationFailed,
    DCSError,
    DCSUnavailable,
    LeaderKeyLost,
    LeaseNotFound,
)
from haagent.dcs.etcd import EtcdDCS, read_raw
from haagent.dcs.memory import ManualClock, MemoryDCS, MemoryStore
from haagent.dcs.protocol import DCS


def create_dcs(settings: Settings, dynamic: DynamicConfig | None = None) -> DCS:
    """The DCS for `settings` (etcd v3; ttl and retry_timeout from `dynamic` or bootstrap.dcs)."""
    return EtcdDCS.from_settings(settings, dynamic)


__all__ = [
    "DCS",
    "AuthenticationFailed",
    "DCSError",
    "DCSUnavailable",
    "EtcdDCS",
    "LeaderKeyLost",
    "LeaseNotFound",
    "ManualClock",
    "MemoryDCS",
    "MemoryStore",
    "create_dcs",
    "read_raw",
]
