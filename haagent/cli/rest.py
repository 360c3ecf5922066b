"""haactl's calls to the members' REST APIs (Patroni's endpoints), with basic auth and TLS.

The calls go through `haagent.rest_client` (the rules every call to a member follows);
this module says which TLS files and credentials haactl uses.

Credentials come from `--user` / `HAACTL_USER` + `HAACTL_PASSWORD`, else the config's
`ctl.authentication`, else `restapi.authentication`.  They go with the changing
requests only (reads need none), and never over plain HTTP when TLS is configured
(`--cacert`/`--cert`, `ctl.cacert`, `restapi.cafile`).  TLS: `--cacert` (or
`ctl.cacert`, `restapi.cafile`) verifies the members' certificates, `--cert`/`--key`
(or `ctl.certfile`/`ctl.keyfile`) present a client certificate, `-k`/`--insecure`
skips verification; the files are read at the first `https://` call.  A member that
does not answer (or answers nonsense) is an `ApiUnreachable`, never a crash.
"""

from __future__ import annotations

import ssl

from haagent.cli.context import Connection, Ctl
from haagent.cli.errors import BadInput
from haagent.rest_client import (
    AiohttpTransport,
    ApiUnreachable,
    Authorization,
    Failure,
    RestClient,
    Transport,
)

__all__ = ["ApiUnreachable", "RestClient", "command_client", "haactl_client", "ssl_context"]

# What to do about a failure, in haactl's options.
HINTS = {
    Failure.CERTIFICATE: " (pass --cacert CA_FILE, or -k to skip the check)",
    Failure.TLS: " (check --cacert / --cert / --key)",
    Failure.DISCONNECTED_TLS: " (does it require a client certificate? pass --cert and --key)",
}


def ssl_context(conn: Connection) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(conn.rest_cacert) if conn.rest_cacert else None
        )
        if conn.rest_cert:
            context.load_cert_chain(
                str(conn.rest_cert), str(conn.rest_key) if conn.rest_key else None
            )
    except (OSError, ssl.SSLError) as e:
        raise BadInput(
            f"cannot load the REST API TLS files: {e}; check --cacert/--cert/--key"
        ) from None
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def haactl_client(conn: Connection, transport: Transport | None = None) -> RestClient:
    """The client for the calls of one command (`async with`): `transport` is the real
    one unless a test hands in another."""
    if transport is None:
        built: list[ssl.SSLContext] = []

        def tls() -> ssl.SSLContext:
            if not built:
                built.append(ssl_context(conn))
            return built[0]

        transport = AiohttpTransport(tls)
    tls_configured = conn.rest_cacert is not None or conn.rest_cert is not None
    authorization = Authorization.basic(conn.rest_auth, tls_only=tls_configured)
    return RestClient(transport, authorization, hints=HINTS)


def command_client(ctl: Ctl) -> RestClient:
    """The client of one haactl command, over `ctl.rest_transport` when it is set."""
    conn = ctl.connection
    factory = ctl.rest_transport
    return haactl_client(conn, factory(conn) if factory is not None else None)
