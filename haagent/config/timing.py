"""The lease arithmetic: ttl, loop_wait, retry_timeout, and the deadlines derived from them.

One leader key lives on a lease of `ttl` seconds.  A renewal sent at time `t`
that etcd acknowledges keeps the key until `t + ttl` at the earliest (etcd
received it after `t`).  Everything that keeps a primary from outliving its
lease is computed here, from these three numbers, and nowhere else:

    renewal          every loop_wait seconds, each bounded by retry_timeout
    demote           a renewal that fails (etcd said no, or no answer within
                     retry_timeout) fences PostgreSQL at once: at the latest
                     loop_wait + retry_timeout after the last good renewal
    lease fence      an independent process stops PostgreSQL at
                     `t + ttl - margin` unless a later renewal moved the deadline
    key expiry       `t + ttl`, the earliest moment another node may promote

With the rule `loop_wait + 2 * retry_timeout <= ttl` (Patroni's), a failed
renewal fences at least retry_timeout before the key can expire, and the lease
fence's margin fits between the latest healthy renewal (`loop_wait +
retry_timeout`) and the expiry:

    margin = min(MAX_FENCE_MARGIN, (ttl - loop_wait - retry_timeout) / 2)

    ttl 30, loop_wait 10, retry_timeout 10 (Patroni's defaults): margin 5 s
    ttl 10, loop_wait 2,  retry_timeout 3  (the lab's fast timings): margin 2.5 s

A fast shutdown refuses new connections and terminates every backend the
moment it starts, so no write is acknowledged after the fence fires; the
margin is the time the shutdown has to send the last WAL to the replicas
before one of them may be promoted (measured: see the README's fencing section).
"""

from __future__ import annotations

from dataclasses import dataclass

# Patroni's lower bounds for loop_wait and retry_timeout; haagent allows a shorter ttl
# than Patroni's 20 s (the lab runs at 10 s) as long as the rule below holds.
MIN_LOOP_WAIT = 1
MIN_RETRY_TIMEOUT = 1
MIN_TTL = MIN_LOOP_WAIT + 2 * MIN_RETRY_TIMEOUT
MAX_FENCE_MARGIN = 5.0


@dataclass(frozen=True)
class Timings:
    ttl: int
    loop_wait: int
    retry_timeout: int

    @property
    def fence_margin(self) -> float:
        """Seconds before the lease can expire at which the lease fence stops PostgreSQL."""
        return min(MAX_FENCE_MARGIN, (self.ttl - self.loop_wait - self.retry_timeout) / 2)

    @property
    def renew_every(self) -> float:
        """Seconds between two renewals of the leader key (counted from the last good one)."""
        return float(self.loop_wait)

    @property
    def demote_within(self) -> float:
        """The latest a leader that lost etcd starts to stop writes, after its last renewal."""
        return float(self.loop_wait + self.retry_timeout)


def adjust_timings(ttl: int, loop_wait: int, retry_timeout: int) -> tuple[Timings, str | None]:
    """Make `loop_wait + 2 * retry_timeout <= ttl` hold the way Patroni does.

    Patroni accepts any combination and lowers `loop_wait` first, then (when
    loop_wait is already at its minimum) `retry_timeout`.  Returns the timings
    to run with and a sentence saying what was changed (None when nothing was).
    """
    if loop_wait + 2 * retry_timeout <= ttl:
        return Timings(ttl, loop_wait, retry_timeout), None
    rule = f'"loop_wait + 2 * retry_timeout <= ttl" does not hold for ttl={ttl}'
    if MIN_LOOP_WAIT + 2 * retry_timeout > ttl:
        new_retry = max(MIN_RETRY_TIMEOUT, (ttl - MIN_LOOP_WAIT) // 2)
        return Timings(ttl, MIN_LOOP_WAIT, new_retry), (
            f"{rule}: running with loop_wait {MIN_LOOP_WAIT} (not {loop_wait}) and "
            f"retry_timeout {new_retry} (not {retry_timeout}), as Patroni does; "
            "raise ttl to keep your values"
        )
    new_loop_wait = ttl - 2 * retry_timeout
    return Timings(ttl, new_loop_wait, retry_timeout), (
        f"{rule} and retry_timeout={retry_timeout}: running with loop_wait {new_loop_wait} "
        f"(not {loop_wait}), as Patroni does; raise ttl to keep your values"
    )
