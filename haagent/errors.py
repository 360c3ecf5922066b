"""The error that ends the agent's start with one line and an exit status (`haagent.main`)."""

from __future__ import annotations


class StartupError(Exception):
    """The agent cannot start: `str()` is the one line to print, `status` the exit status
    (`haagent.main.EXIT_CONFIG` for a configuration error, which restarting will not fix;
    `EXIT_FAILED` for something that may)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
