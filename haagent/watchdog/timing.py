"""The watchdog's arithmetic, as pure functions.

The leader renews its key every `loop_wait` seconds and the key expires `ttl`
seconds after the last renewal.  The watchdog is kept alive right after each
successful renewal, so it must fire before the key expires (a node that stopped
renewing is reset before another node may promote: `timeout = ttl -
safety_margin`) and not between two healthy renewals (`timeout >= loop_wait`).
"""

from __future__ import annotations


def watchdog_timeout(ttl: int, safety_margin: int) -> int:
    """The timeout to ask of the device: `ttl - safety_margin` seconds."""
    return ttl - safety_margin


def check_timing(ttl: int, loop_wait: int, safety_margin: int) -> list[str]:
    """Why these settings leave no room for a watchdog; empty when they are fine."""
    timeout = watchdog_timeout(ttl, safety_margin)
    formula = f"ttl {ttl} - watchdog.safety_margin {safety_margin}"
    if timeout < 1:
        return [
            f"watchdog timeout {formula} = {timeout}s is below 1s: "
            "raise ttl or lower watchdog.safety_margin"
        ]
    problems: list[str] = []
    if timeout < loop_wait:
        problems.append(
            f"watchdog timeout {formula} = {timeout}s is shorter than loop_wait {loop_wait}s: "
            "the node would be reset between two healthy HA cycles; raise ttl, or lower "
            "loop_wait or watchdog.safety_margin"
        )
    return problems


def check_device_timeout(requested: int, actual: int, loop_wait: int, device: str) -> list[str]:
    """Why the timeout a device really runs with is unsafe; empty when it is fine.

    Longer than requested: the reset would come after the leader key may have
    expired and another node promoted.  Shorter than loop_wait: resets between
    healthy cycles.  Shorter than requested but long enough is fine.
    """
    problems: list[str] = []
    if actual > requested:
        problems.append(
            f"watchdog.device {device} cannot be set as low as {requested}s (ttl - "
            f"safety_margin): it runs with {actual}s, so it would reset this node only after "
            "its leader key expired; raise ttl or use a device with a shorter minimum timeout"
        )
    if actual < loop_wait:
        problems.append(
            f"watchdog.device {device} runs with a {actual}s timeout, shorter than loop_wait "
            f"{loop_wait}s: the node would be reset between two healthy HA cycles"
        )
    return problems
