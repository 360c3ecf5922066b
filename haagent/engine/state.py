"""The engine's memory between cycles: what earlier actions did.

`LoopState` is mutable and owned by the loop; `facts()` freezes it into the
`LocalFacts` a snapshot carries, so `decide` sees a value, never this object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haagent.core.roles import Role
from haagent.core.snapshot import LocalFacts, ManualRequest, PeerPosition


@dataclass
class LoopState:
    role: Role = Role.UNINITIALIZED
    leader_lease_expires: float | None = None
    renew_failed: bool = False
    bootstrapping: bool = False
    postgres_down_since: float | None = None
    rewind_failed: str | None = None
    replica_clone_failures: int = 0
    failsafe_confirmed: bool = False
    # Monotonic time a leader last asked us to confirm it in failsafe mode (POST /failsafe).
    failsafe_heard_at: float | None = None
    shutdown_requested: bool = False
    manual: ManualRequest | None = None
    following: str | None = None
    peers: dict[str, PeerPosition] | None = None
    dcs_ok: bool = True
    dcs_error: str | None = None
    dcs_last_seen_wall: float | None = None
    slot_last_seen: dict[str, float] = field(default_factory=dict)

    def facts(self, now: float = 0.0, ttl: float = 30.0) -> LocalFacts:
        heard = self.failsafe_heard_at
        return LocalFacts(
            failsafe_leader_seen=heard is not None and now - heard <= ttl,
            role=self.role,
            leader_lease_expires=self.leader_lease_expires,
            renew_failed=self.renew_failed,
            bootstrapping=self.bootstrapping,
            postgres_down_since=self.postgres_down_since,
            rewind_failed=self.rewind_failed,
            replica_clone_failures=self.replica_clone_failures,
            failsafe_confirmed=self.failsafe_confirmed,
            shutdown_requested=self.shutdown_requested,
            manual=self.manual,
            following=self.following,
        )
