"""Who may call the changing endpoints: basic auth, an address allowlist, TLS.

- Basic auth compares user name and password in constant time and answers
  401 with `WWW-Authenticate: Basic realm="haagent"`; the password is never
  logged nor kept anywhere but in the settings.
- The allowlist holds addresses and networks; host names are resolved once,
  when the server starts.  Members' `api_url` hosts are added per request when
  `allowlist_include_members` is on.  A client outside it gets 403.
- TLS uses `certfile`/`keyfile` (and `keyfile_password`); `verify_client`
  `none`/`optional`/`required` maps to CERT_NONE/CERT_OPTIONAL/CERT_REQUIRED
  against `cafile`.  As in Patroni, with `optional` or `required` a changing
  request without a valid client certificate is refused with 403.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from haagent.config.model import Credentials, RestApiSettings

log = logging.getLogger("haagent.api")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

WWW_AUTHENTICATE = 'Basic realm="haagent"'


class TlsSettingsError(ValueError):
    """The `restapi` TLS settings cannot make a server context."""


def check_basic_auth(header: str | None, expected: Credentials) -> str | None:
    """None when `header` carries the expected credentials, else why not (safe to show)."""
    if not header:
        return "no Authorization header received"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "the Authorization header is not Basic"
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "the Authorization header is not valid base64"
    user, sep, password = decoded.partition(b":")
    want_user = expected.username.encode()
    want_password = (expected.password or "").encode()
    user_ok = hmac.compare_digest(user, want_user)
    password_ok = hmac.compare_digest(password, want_password)
    if not (sep and user_ok and password_ok):
        return "not authenticated"
    return None


def parse_address(text: str) -> Address | None:
    """An IP address (IPv4-mapped IPv6 turned into IPv4), or None if `text` is not one."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


async def resolve_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks of every allowlist entry; host names resolved now, once."""
    loop = asyncio.get_running_loop()
    networks: list[Network] = []
    for entry in entries:
        network = _network(entry)
        if network is not None:
            networks.append(network)
            continue
        try:
            infos = await loop.getaddrinfo(entry, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning("restapi.allowlist: cannot resolve %r (%s); it allows nobody", entry, exc)
            continue
        for info in infos:
            address = parse_address(str(info[4][0]))
            if address is not None:
                networks.append(ipaddress.ip_network(address))
    return tuple(networks)


def allowed(remote: str | None, networks: Iterable[Network]) -> bool:
    address = parse_address(remote) if remote else None
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


def member_hosts(api_urls: Iterable[str]) -> list[str]:
    hosts: list[str] = []
    for url in api_urls:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            continue
        if host:
            hosts.append(host)
    return hosts


def server_ssl_context(settings: RestApiSettings) -> ssl.SSLContext | None:
    """The TLS context of the REST server; None when `certfile` is not set."""
    if settings.certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    reload_ssl_context(context, settings)
    return context


def reload_ssl_context(context: ssl.SSLContext, settings: RestApiSettings) -> None:
    """(Re)load certificates and client verification into `context`; new connections use them."""
    assert settings.certfile is not None
    try:
        context.load_cert_chain(
            str(settings.certfile),
            str(settings.keyfile) if settings.keyfile else None,
            password=settings.keyfile_password,
        )
        if settings.cafile is not None:
            context.load_verify_locations(cafile=str(settings.cafile))
    except (OSError, ssl.SSLError) as exc:
        raise TlsSettingsError(
            f"restapi: cannot load certfile {settings.certfile} / keyfile {settings.keyfile}"
            f" / cafile {settings.cafile}: {exc}"
        ) from exc
    if settings.verify_client != "none" and settings.cafile is None:
        raise TlsSettingsError(
            f"restapi.verify_client is {settings.verify_client!r} but restapi.cafile is not set:"
            " set cafile to the CA that signs client certificates"
        )
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[settings.verify_client]
