"""Errors that end the agent with one line and an exit status (see `haagent.main`)."""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_CONFIG = 2


class StartupError(Exception):
    """The agent cannot start: `str()` is the one line to print, `status` the exit status
    (2: a configuration error, which restarting will not fix; 1: something that may)."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status
