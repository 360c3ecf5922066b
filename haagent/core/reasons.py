"""Stable reason codes: logged, published in `GET /`, counted in metrics, shown by `haactl`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from haagent.postgres.slots import SLOT_LOST_CODE, SLOT_MADE_AFTER_FAILOVER_CODE


class Code(StrEnum):
    # bootstrap
    RACE_INITIALIZE = "race_initialize"
    BOOTSTRAPPING = "bootstrapping"
    BOOTSTRAP_FINISHING = "bootstrap_finishing"
    WAITING_FOR_BOOTSTRAP = "waiting_for_bootstrap"
    CANNOT_BOOTSTRAP = "cannot_bootstrap"
    SYSTEM_ID_MISMATCH = "system_id_mismatch"
    CREATING_REPLICA = "creating_replica"
    WAITING_FOR_LEADER_TO_CLONE = "waiting_for_leader_to_clone"
    # leader
    LEADER_RENEWED = "leader_renewed"
    LEADER_RENEW_FAILED = "leader_renew_failed"
    LEADER_KEY_LOST = "leader_key_lost"
    RESTARTING_CRASHED_PRIMARY = "restarting_crashed_primary"
    PRIMARY_START_TIMEOUT = "primary_start_timeout"
    PRIMARY_START_FAILED = "primary_start_failed"
    PROMOTING = "promoting"
    PRE_PROMOTE_FAILED = "pre_promote_failed"
    SWITCHOVER_DEMOTING = "switchover_demoting"
    SWITCHOVER_SCHEDULED = "switchover_scheduled"
    SWITCHOVER_CANDIDATE_UNFIT = "switchover_candidate_unfit"
    FAILSAFE_ACTIVE = "failsafe_active"
    DCS_UNREACHABLE_DEMOTING = "dcs_unreachable_demoting"
    # standby cluster
    STANDBY_LEADER = "standby_leader"
    BOOTSTRAPPING_STANDBY = "bootstrapping_standby_leader"
    DEMOTING_CLUSTER = "demoting_to_standby_cluster"
    NO_REMOTE_TO_CLONE = "standby_cluster_nothing_to_clone"
    # replica
    FOLLOWING = "following_leader"
    FOLLOW_NEW_LEADER = "follow_new_leader"
    STARTING_REPLICA = "starting_replica"
    DEMOTING_NOT_LEADER = "demoting_not_leader"
    DCS_UNREACHABLE = "dcs_unreachable"
    REWIND_FAILED = "rewind_failed"
    UPSTREAM_TIMELINE_AHEAD = "upstream_timeline_ahead"
    COPYING_LOGICAL_SLOTS = "copying_logical_slots"
    # race
    RACE_WON = "leader_race"
    PEERS_NEEDED = "asking_peers"
    NOFAILOVER = "nofailover"
    LAGGING = "lagging"
    PEER_AHEAD = "peer_ahead"
    NOT_SYNCHRONOUS = "not_synchronous"
    QUORUM_NOT_REACHED = "quorum_not_reached"
    WAITING_FOR_CANDIDATE = "waiting_for_candidate"
    FAILSAFE_NOT_LISTED = "failsafe_not_listed"
    TIMELINE_BEHIND = "timeline_behind_history"
    POSTGRES_NOT_RUNNING = "postgres_not_running"
    WATCHDOG_UNAVAILABLE = "watchdog_required_unavailable"
    # manual
    PAUSED = "paused"
    RESTARTING = "restarting"
    REINITIALIZING = "reinitializing"
    SHUTTING_DOWN = "shutting_down"
    # slots: not a decision's reason, the code of a slot's report (log line, haactl list)
    SLOT_LOST = SLOT_LOST_CODE
    SLOT_MADE_AFTER_FAILOVER = SLOT_MADE_AFTER_FAILOVER_CODE


@dataclass(frozen=True)
class Reason:
    """Why a decision was taken: a stable code and a sentence for people."""

    code: Code
    text: str

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"


def required_watchdog_unavailable(detail: str | None = None, *, member: str | None = None) -> str:
    """The sentence for a node whose required watchdog cannot be used (`watchdog.mode:
    required`, code WATCHDOG_UNAVAILABLE): the watchdog's own reason, the decision's text
    and `haactl explain` all say it this way."""
    on = f" on {member}" if member else ""
    text = f"watchdog.mode is required but the watchdog is unavailable{on}"
    return f"{text}: {detail}" if detail else text
