"""The few errors the DCS layer raises, so the HA loop can tell its cases apart.

`DCSUnavailable` means "etcd did not answer in time": the loop must assume the
worst (a leader that cannot renew demotes).  `LeaderKeyLost` means etcd answered
and the key is gone or someone else's.  `AuthenticationFailed` is a
configuration problem a person has to fix.  Every message names the endpoints
involved and what to check.
"""

from __future__ import annotations


class DCSError(Exception):
    """Base of every DCS error; the message says which endpoint(s) and what to do."""


class DCSUnavailable(DCSError):
    """etcd could not be reached, or did not answer within `retry_timeout`."""


class LeaderKeyLost(DCSError):
    """A renewal found the leader key absent or held by another member."""


class AuthenticationFailed(DCSError):
    """etcd refused the username/password or the client certificate."""


class LeaseNotFound(DCSError):
    """etcd no longer knows the lease a write referred to (it expired or was revoked)."""


class WatchCompacted(DCSError):
    """A watch asked for a revision etcd has already compacted; re-read and watch again."""

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision
