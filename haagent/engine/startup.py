"""Checks before the agent touches etcd or PostgreSQL: each failure is one line saying
what is wrong, where it is configured and what to do, and an exit status.

Exit status 2 (a configuration error: systemd's RestartPreventExitStatus=2 does not
restart it) for TLS files that cannot be loaded; 1 (restarted after RestartSec) for a
REST API address that cannot be bound now (in use by another process, say).
"""

from __future__ import annotations

import errno

from haagent.api.auth import TlsSettingsError, server_ssl_context
from haagent.config import ConfigError, Settings
from haagent.engine.peers import PeerAccess, peer_access
from haagent.errors import StartupError
from haagent.main import EXIT_CONFIG, EXIT_FAILED
from haagent.postgres.proc import bind_error, port_owner


def _where(settings: Settings, key: str) -> str:
    return f"{key} in {settings.source}" if settings.source else key


def listen_problem(settings: Settings) -> str | None:
    """Why the REST API could not listen on `restapi.listen` now, or None."""
    listen = settings.restapi.listen
    for host in listen.hosts:
        error = bind_error(host, listen.port)
        if error is None:
            continue
        address = f"{host}:{listen.port}"
        where = _where(settings, "restapi.listen")
        if error.errno == errno.EADDRINUSE:
            owner = port_owner(host, listen.port)
            by = f" by {owner}" if owner else " by another process"
            return (
                f"cannot start: the REST API address {address} ({where}) is already in use{by}:"
                " stop that process, or choose another port"
            )
        if error.errno == errno.EADDRNOTAVAIL:
            return (
                f"cannot start: {host} ({where}) is not an address of this host: use one of "
                "its addresses, or 0.0.0.0"
            )
        if error.errno == errno.EACCES:
            return (
                f"cannot start: listening on {address} ({where}) is not permitted for this user"
                " (ports below 1024 need privileges): choose a port above 1023"
            )
        return f"cannot start: the REST API cannot listen on {address} ({where}): {error}"
    return None


def preflight(settings: Settings) -> PeerAccess:
    """Everything checked before start; returns the peer client's TLS and credentials."""
    try:
        server_ssl_context(settings.restapi)
        access = peer_access(settings)
    except TlsSettingsError as e:
        raise StartupError(f"{settings.source}: {e}", EXIT_CONFIG) from None
    except ConfigError as e:
        raise StartupError(str(e), EXIT_CONFIG) from None
    problem = listen_problem(settings)
    if problem is not None:
        raise StartupError(problem, EXIT_FAILED)
    return access


def bind_failure(settings: Settings, error: OSError) -> StartupError:
    """The REST API could not listen after all (the address was taken since the check)."""
    problem = listen_problem(settings) or f"cannot start: the REST API cannot listen: {error}"
    return StartupError(problem, EXIT_FAILED)
