"""Failures that retrying cannot fix: the agent stops with one line saying why.

Raised out of the HA loop (which retries everything else) to the daemon, which
logs the message once and exits with status 2, the status systemd's unit does not
restart (`RestartPreventExitStatus=2`): a person has to fix the cause first.
"""

from __future__ import annotations

EXIT_STATUS = 2  # as for a configuration error: systemd's unit does not restart it


class AgentStop(Exception):
    """The agent cannot go on; the message says why and what to do."""


def bootstrap_stop_message(error: Exception) -> str:
    """One line: the bootstrap failure, what was undone, what to do."""
    why = " / ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return (
        f"stopping: bootstrap failed: {why}. The initialize key is released and the "
        "half-made cluster removed, so another node (or this one, once started again) "
        "bootstraps from scratch; fix the cause and start haagent again"
    )
