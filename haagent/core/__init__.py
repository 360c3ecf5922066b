"""The pure HA core: snapshot in, decision out.  No I/O, no clock, no logging.

`decide(snapshot) -> Decision` is the whole HA policy; the engine observes,
calls it, and executes the typed actions it returns in order.  What the engine
remembers between cycles changes only through the core too: `memory.py` (what an
observation or a request changes) and `outcomes.py` (what each action's outcome
changes), and `roles.py` says which role a cycle reaches and may move to.
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
