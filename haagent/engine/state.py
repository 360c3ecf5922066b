"""The engine's memory between cycles: what earlier actions did.

`LoopState` is mutable and owned by the loop; `facts()` freezes it into the
`LocalFacts` a snapshot carries, so `decide` sees a value, never this object.
The leader key's lease is the lease keeper's (`lease.py`), handed in as `LeaseFacts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from haagent.core.roles import Role
from haagent.core.snapshot import LocalFacts, ManualRequest, PeerPosition
from haagent.dcs.model import Member
from haagent.engine.lease import LeaseFacts


@dataclass
class LoopState:
    role: Role = Role.UNINITIALIZED
    bootstrapping: bool = False
    postgres_down_since: float | None = None
    start_failure: str | None = None
    rewind_failed: str | None = None
    replica_clone_failures: int = 0
    # When a leader last asked us to confirm it in failsafe mode (POST /failsafe).
    failsafe_heard_at: float | None = None
    leaderless_since: float | None = None
    shutdown_requested: bool = False
    manual: ManualRequest | None = None
    following: str | None = None
    peers: dict[str, PeerPosition] | None = None
    dcs_ok: bool = True
    dcs_error: str | None = None
    dcs_last_seen_wall: float | None = None
    slot_last_seen: dict[str, float] = field(default_factory=dict)
    # Members seen in the view lately, kept after their member key is gone: one whose key
    # expired may still run PostgreSQL (cut off from etcd, or in maintenance mode), and a
    # leader race asks it too before it promotes anyone.
    known_members: dict[str, tuple[Member, float]] = field(default_factory=dict)
    sync_named_at: dict[str, int] = field(default_factory=dict)

    def facts(self, lease: LeaseFacts, now: float = 0.0, ttl: float = 30.0) -> LocalFacts:
        heard = self.failsafe_heard_at
        return LocalFacts(
            failsafe_leader_seen=heard is not None and now - heard <= ttl,
            role=self.role,
            leader_lease_expires=lease.expires,
            renew_failure=lease.failure,
            bootstrapping=self.bootstrapping,
            postgres_down_since=self.postgres_down_since,
            start_failure=self.start_failure,
            rewind_failed=self.rewind_failed,
            replica_clone_failures=self.replica_clone_failures,
            failsafe_confirmed=lease.failsafe_confirmed,
            leaderless_since=self.leaderless_since,
            shutdown_requested=self.shutdown_requested,
            manual=self.manual,
            following=self.following,
            sync_named_at=dict(self.sync_named_at),
        )

    def remember(self, members: Mapping[str, Member], now: float, keep_for: float) -> None:
        for name, member in members.items():
            self.known_members[name] = (member, now)
        for name in [n for n, (_, seen) in self.known_members.items() if now - seen > keep_for]:
            del self.known_members[name]

    def note_sync_names(self, names: list[str], position: int | None) -> None:
        """Remember the primary's WAL position when each standby was first seen named in
        synchronous_standby_names (a later position is stricter, so this is safe)."""
        for name in list(self.sync_named_at):
            if name not in names:
                del self.sync_named_at[name]
        if position is not None:
            for name in names:
                self.sync_named_at.setdefault(name, position)
