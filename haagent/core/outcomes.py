"""What an action did, as a value, and the one function that folds it into the engine's memory.

The executor runs each action of a decision and reports its outcome: `Done`,
`PeersAnswered` (ObservePeers: what each peer said) or `Failed` (why, and the kind
of failure a later decision cares about).  `after(memory, action, outcome, now)` is
the only place where an outcome changes what the engine remembers
(`core.memory.Memory`): a won initialize race starts a bootstrap, a start as the
primary that PostgreSQL refused is remembered so that the key goes to a replica, a
failed rewind keeps the data directory until someone decides, etcd's silence is
remembered until it answers again...  Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from haagent.core.actions import (
    Action,
    BootstrapCluster,
    BootstrapStandbyLeader,
    CopyLogicalSlots,
    CreateReplica,
    Demote,
    Follow,
    PrePromote,
    Promote,
    RaceInitialize,
    RemoveDataDirectory,
    RestartPostgres,
    SetInitialize,
    StartPostgres,
)
from haagent.core.memory import Memory, etcd_answered, etcd_unreachable
from haagent.core.snapshot import PeerPosition


class Failure(StrEnum):
    """The kinds of failure a later decision tells apart."""

    ACTION = "action"  # the action did not happen (`why` says what went wrong)
    ETCD_UNREACHABLE = "etcd_unreachable"  # etcd did not answer within retry_timeout
    START_REFUSED = "start_refused"  # PostgreSQL exited during its start (not a timeout)
    REWIND_FAILED = "rewind_failed"  # pg_rewind failed; the data directory is kept


@dataclass(frozen=True)
class Done:
    """The action did what it says; `etcd_answered` when it heard from etcd on the way."""

    etcd_answered: bool = False


@dataclass(frozen=True)
class PeersAnswered:
    """ObservePeers: what each member said (unreachable is an answer too)."""

    positions: Mapping[str, PeerPosition]
    etcd_answered: bool = False


@dataclass(frozen=True)
class Failed:
    why: str
    kind: Failure = Failure.ACTION
    etcd_answered: bool = False


ActionOutcome = Done | PeersAnswered | Failed


def after(memory: Memory, action: Action, outcome: ActionOutcome, now: float) -> Memory:
    """What the engine remembers once `action` ended with `outcome` at `now`."""
    if isinstance(outcome, Failed) and outcome.kind is Failure.ETCD_UNREACHABLE:
        memory = etcd_unreachable(memory, outcome.why)
    elif outcome.etcd_answered:
        memory = etcd_answered(memory)
    if isinstance(outcome, Failed):
        return _after_failure(memory, action, outcome, now)
    if isinstance(outcome, PeersAnswered):
        return replace(memory, peers=dict(outcome.positions))
    match action:
        case RaceInitialize(value=""):
            return replace(memory, bootstrapping=True)
        case SetInitialize():
            return replace(memory, bootstrapping=False)
        case CreateReplica():
            return replace(memory, replica_clone_failures=0)
        case StartPostgres(role=role, leader=leader):
            following = leader if role == "replica" else None
            return replace(memory, start_failure=None, following=following, rewind_failed=None)
        case RestartPostgres(role=role, leader=leader):
            following = leader if role == "replica" else None
            return replace(memory, manual=None, following=following)  # carried out
        case RemoveDataDirectory():
            return replace(memory, manual=None)  # the request is carried out
        case PrePromote():
            return replace(memory, pre_promote_failed=None)
        case Promote():
            return replace(memory, following=None)
        case Demote(leader=leader):
            return replace(memory, following=leader)
        case Follow(leader=leader):
            return replace(memory, following=leader, rewind_failed=None)
        case CopyLogicalSlots():
            return replace(memory, slot_copy_failed_at=None)
    return memory


def _after_failure(memory: Memory, action: Action, failed: Failed, now: float) -> Memory:
    match action:
        case BootstrapCluster() | BootstrapStandbyLeader():
            return replace(memory, bootstrapping=False)  # the initialize key is given back
        case SetInitialize() if failed.etcd_answered:
            # etcd took our system identifier (its first call): the bootstrap is over even
            # though seeding the `config` key after it failed.
            return replace(memory, bootstrapping=False)
        case CreateReplica():
            return replace(memory, replica_clone_failures=memory.replica_clone_failures + 1)
        case StartPostgres(role="primary") if failed.kind is Failure.START_REFUSED:
            return replace(memory, start_failure=failed.why.splitlines()[0])
        case Follow() if failed.kind is Failure.REWIND_FAILED:
            return replace(memory, rewind_failed=failed.why)
        case CopyLogicalSlots():
            return replace(memory, slot_copy_failed_at=now)  # not tried again for a while
        case PrePromote():
            # Whatever went wrong (a non-zero exit, a timeout, a script that cannot run),
            # the promotion is cancelled: the key goes to another member.
            return replace(memory, pre_promote_failed=(now, failed.why))
    return memory
