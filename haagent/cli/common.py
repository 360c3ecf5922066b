"""Small helpers the commands share: confirmations, member checks, times, names."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import click

from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.store import Snapshot
from haagent.dcs.model import ClusterView


def confirm(question: str, force: bool) -> None:
    """Ask `question` unless `force`; "no" ends the command with exit status 1."""
    if force:
        return
    if not click.confirm(question, default=False):
        raise ActionFailed("Aborted: nothing was changed")


def names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def require_cluster(snapshot: Snapshot, prefix: str, hosts: str) -> ClusterView:
    if not snapshot.exists:
        raise ActionFailed(
            f"cluster {snapshot.scope!r} has no keys under {prefix} in etcd at {hosts}; "
            "check the cluster name (scope) and namespace"
        )
    return snapshot.view


def require_member(view: ClusterView, name: str, scope: str, what: str = "member") -> None:
    if name not in view.members:
        raise BadInput(
            f"{what} {name!r} is not a member of cluster {scope} "
            f"(members: {names(view.members)}); check the name with `haactl list`"
        )


def parse_when(text: str | None, what: str, now: datetime | None = None) -> datetime | None:
    """An ISO-8601 time (local time when it names no zone), or None for "now" / empty."""
    if text is None or text.strip().lower() in ("", "now"):
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(
            f"cannot read the {what} time {text!r}: use ISO-8601 such as "
            "2030-01-31T12:00+00:00 (or 'now')"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.astimezone()  # naive: the local time zone
    now = now or datetime.now().astimezone()
    if when < now:
        raise BadInput(f"the {what} time {when.isoformat()} is in the past; give a future time")
    return when


def example_time() -> str:
    soon = datetime.now().astimezone() + timedelta(hours=1)
    return soon.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")


def stamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def split_cluster_and_members(
    arguments: Sequence[str], scope: str | None
) -> tuple[str | None, list[str]]:
    """`[CLUSTER] MEMBER...`: the first word is the cluster when it names the known scope,
    or when no scope is known (no config, no --scope)."""
    words = list(arguments)
    if not words:
        return None, []
    if scope is None or words[0] == scope:
        return words[0], words[1:]
    return None, words
