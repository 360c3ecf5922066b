"""Exit codes and the two errors every `haactl` command raises.

- 0: the command did what was asked.
- 1 (`ActionFailed`): the cluster or a service refused or failed (etcd cannot be reached,
  a candidate is not fit, the leader did not hand over in time, a confirmation was declined).
- 2 (`BadInput`, and click's own usage errors): what was typed is wrong (an unknown member,
  leader equal to candidate, a missing option the situation needs, a bad config file).

Every message says what to do next.
"""

from __future__ import annotations

from typing import IO, Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class ActionFailed(click.ClickException):
    """The action could not be done; exit status 1."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class BadInput(ActionFailed):
    """What was typed cannot work against this cluster; exit status 2."""

    exit_code = EXIT_USAGE
