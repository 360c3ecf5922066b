"""`decide`: the whole HA policy as one pure function of a snapshot."""

from __future__ import annotations

from haagent.core.rules.bootstrap import decide_bootstrap
from haagent.core.rules.leader import decide_leader
from haagent.core.rules.promotion import decide_pre_promote_failed
from haagent.core.rules.race import decide_race
from haagent.core.rules.replica import decide_replica
from haagent.core.rules.special import (
    decide_dcs_unreachable,
    decide_manual,
    decide_paused,
    decide_shutdown,
)
from haagent.core.snapshot import Decision, Snapshot


def decide(s: Snapshot) -> Decision:
    """What this node does now, and why.  Pure: no I/O, no clock (time is `s.now`)."""
    if s.local.shutdown_requested:
        return decide_shutdown(s)
    if s.config.pause:
        return decide_manual(s) or decide_pre_promote_failed(s) or decide_paused(s)
    if not s.dcs_ok:
        return decide_dcs_unreachable(s)
    setup = decide_bootstrap(s)
    if setup is not None:
        return setup
    manual = decide_manual(s)
    if manual is not None:
        return manual
    if s.holds_key:
        return decide_pre_promote_failed(s) or decide_leader(s)
    if s.cluster.leader is not None:
        return decide_replica(s)
    return decide_race(s)
