"""The pure HA core: snapshot in, decision out.  No I/O, no clock, no logging.

`decide(snapshot) -> Decision` is the whole HA policy; the engine observes,
calls it, and executes the typed actions it returns in order.
"""

from haagent.core.actions import Action
from haagent.core.decide import decide
from haagent.core.reasons import Reason
from haagent.core.roles import Role
from haagent.core.snapshot import Decision, LocalFacts, PeerPosition, Snapshot

__all__ = [
    "Action",
    "Decision",
    "LocalFacts",
    "PeerPosition",
    "Reason",
    "Role",
    "Snapshot",
    "decide",
]
