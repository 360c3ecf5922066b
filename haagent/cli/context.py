"""Where `haactl` finds the cluster: `-c CONFIG` / `HAACTL_CONFIG`, `--dcs-url`, `--scope`.

A node's own YAML file works as `haactl`'s config (as with `patronictl -c`), and so does
a short file with only `scope`, `namespace`, `etcd3`, `restapi.authentication` and a
Patroni-style `ctl` section (`insecure`, `cacert`, `certfile`, `keyfile`,
`authentication`).  `--dcs-url` replaces `etcd3.hosts`; `--scope` (or a command's
CLUSTER_NAME argument) replaces `scope`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from haagent.cli.errors import BadInput
from haagent.config import ConfigError, Credentials, Etcd3Settings, read_yaml
from haagent.config.load import parse_settings_with_warnings
from haagent.config.model import DEFAULT_NAMESPACE
from haagent.config.parse import Context, Section
from haagent.config.sections import parse_ctl, parse_etcd3
from haagent.dcs.channel import EtcdChannel, TlsConfig
from haagent.dcs.errors import DCSError
from haagent.dcs.etcd import EtcdKV
from haagent.dcs.kv import KVBackend
from haagent.rest_client import Transport

T = TypeVar("T")

DEFAULT_RETRY_TIMEOUT = 10.0
_PLACEHOLDER_SCOPE = "haactl-no-scope"


@dataclass(frozen=True)
class Connection:
    """Everything `haactl` needs to reach one cluster's etcd keys and its members' APIs."""

    scope: str | None
    namespace: str = DEFAULT_NAMESPACE
    etcd: Etcd3Settings = field(default_factory=Etcd3Settings)
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT
    rest_auth: Credentials | None = None
    rest_cacert: Path | None = None
    rest_cert: Path | None = None
    rest_key: Path | None = None
    insecure: bool = False
    superuser: Credentials | None = None
    # Where the etcd hosts came from, for messages ("etcd3.hosts in /etc/haagent/node1.yml").
    source: str = "the default 127.0.0.1:2379"

    def prefix(self, scope: str) -> str:
        parts = [p for p in f"{self.namespace}/{scope}".split("/") if p]
        return "/" + "/".join(parts) + "/"

    @property
    def etcd_hosts(self) -> str:
        return ", ".join(str(h) for h in self.etcd.hosts)


@dataclass(frozen=True)
class Options:
    """The global options as typed."""

    config_file: Path | None = None
    dcs_url: str | None = None
    scope: str | None = None
    namespace: str | None = None
    timeout: float | None = None
    insecure: bool = False
    user: str | None = None
    password: str | None = None
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def load_connection(options: Options) -> Connection:
    """The connection described by the options (and the config file they name)."""
    conn = _from_file(options.config_file) if options.config_file else Connection(scope=None)
    changes: dict[str, Any] = {}
    if options.dcs_url:
        changes["etcd"] = parse_dcs_url(options.dcs_url)
        changes["source"] = f"--dcs-url {options.dcs_url}"
    if options.scope:
        changes["scope"] = options.scope
    if options.namespace:
        changes["namespace"] = options.namespace
    if options.timeout is not None:
        changes["retry_timeout"] = options.timeout
    if options.insecure:
        changes["insecure"] = True
    if options.user:
        user, sep, password = options.user.partition(":")
        secret = password if sep else options.password
        changes["rest_auth"] = Credentials(user, secret or "")
    for name in ("cacert", "cert", "key"):
        if getattr(options, name) is not None:
            changes[f"rest_{name}"] = getattr(options, name)
    return replace(conn, **changes)


def parse_dcs_url(url: str) -> Etcd3Settings:
    """`etcd3://h1:2379,h2:2379`, `http://h:2379` or plain `h1:2379,h2:2379`."""
    text = url.strip()
    for scheme in ("etcd3://", "etcd://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    if not hosts:
        raise BadInput(f"--dcs-url {url!r} names no etcd host; use --dcs-url etcd3://host:2379")
    try:
        return parse_etcd3(Section(Context(origin="--dcs-url"), "etcd3", {"hosts": hosts}))
    except ConfigError as e:
        raise BadInput(f"--dcs-url {url!r}: {e.message}") from None


def _from_file(path: Path) -> Connection:
    try:
        data = read_yaml(path)
    except ConfigError as e:
        raise BadInput(f"{e} (fix the file or point -c / HAACTL_CONFIG at another)") from None
    if not isinstance(data, Mapping):
        raise BadInput(f"{path}: not a YAML mapping; expected a haagent (Patroni) config file")
    scope = data.get("scope") if isinstance(data.get("scope"), str) else None
    try:
        if "postgresql" not in data:
            return _short_file(data, path, scope)
        filled = {**data, "scope": scope or _PLACEHOLDER_SCOPE}
        filled.setdefault("name", "haactl")
        settings, _ = parse_settings_with_warnings(filled, source=path)
    except ConfigError as e:
        raise BadInput(f"{e} (fix the file, or pass --dcs-url to bypass it)") from None
    dynamic = settings.bootstrap.dcs
    ctl = settings.ctl
    return Connection(
        scope=scope or None,
        namespace=settings.namespace,
        etcd=settings.etcd3,
        retry_timeout=float(dynamic.retry_timeout),
        rest_auth=ctl.authentication or settings.restapi.authentication,
        rest_cacert=ctl.cacert or settings.restapi.cafile,
        rest_cert=ctl.certfile,
        rest_key=ctl.keyfile,
        insecure=ctl.insecure,
        superuser=settings.postgresql.authentication.superuser,
        source=f"etcd3.hosts in {path}",
    )


def _short_file(data: Mapping[str, Any], path: Path, scope: str | None) -> Connection:
    """A haactl-only file: scope, namespace, etcd3, restapi (auth, cafile), ctl."""
    context = Context(file=path)
    etcd = parse_etcd3(Section(context, "etcd3", data.get("etcd3") or {}))
    ctl = parse_ctl(Section(context, "ctl", data.get("ctl") or {}))
    value = data.get("restapi")
    restapi: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    auth = restapi.get("authentication")
    rest_auth = None
    if isinstance(auth, Mapping) and auth.get("username"):
        rest_auth = Credentials(str(auth["username"]), str(auth.get("password") or ""))
    cafile = restapi.get("cafile")
    namespace = data.get("namespace")
    return Connection(
        scope=scope or None,
        namespace=namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE,
        etcd=etcd,
        retry_timeout=_retry_timeout(data),
        rest_auth=ctl.authentication or rest_auth,
        rest_cacert=ctl.cacert or (Path(cafile) if isinstance(cafile, str) else None),
        rest_cert=ctl.certfile,
        rest_key=ctl.keyfile,
        insecure=ctl.insecure,
        source=f"etcd3.hosts in {path}",
    )


def _retry_timeout(data: Mapping[str, Any]) -> float:
    """`bootstrap.dcs.retry_timeout` when the file has a usable one."""
    bootstrap = data.get("bootstrap")
    dcs = bootstrap.get("dcs") if isinstance(bootstrap, Mapping) else None
    value = dcs.get("retry_timeout") if isinstance(dcs, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_RETRY_TIMEOUT


def etcd_backend(conn: Connection) -> KVBackend:
    etcd = conn.etcd
    tls = None
    if etcd.protocol == "https" or etcd.cacert or etcd.cert:
        tls = TlsConfig(etcd.cacert, etcd.cert, etcd.key)
    try:
        channel = EtcdChannel(etcd.hosts, tls=tls, username=etcd.username, password=etcd.password)
    except DCSError as e:
        raise BadInput(f"{e} (in {conn.source})") from None
    return EtcdKV(channel)


@dataclass
class Ctl:
    """The click context object: the options, and (lazily) the connection they describe.

    `backend_factory` makes the etcd client; tests put an in-memory store there.
    `rest_transport` makes the transport of the calls to the members' REST APIs (the
    real one when None); tests put a `MockTransport` there.
    """

    options: Options = Options()
    backend_factory: Callable[[Connection], KVBackend] = etcd_backend
    rest_transport: Callable[[Connection], Transport] | None = None
    _connection: Connection | None = field(default=None, init=False)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = load_connection(self.options)
        return self._connection

    def cluster(self, name: str | None) -> str:
        """The cluster a command is about: its CLUSTER_NAME argument, else --scope / scope."""
        scope = name or self.connection.scope
        if not scope:
            raise BadInput(
                "which cluster? pass CLUSTER_NAME, --scope NAME, or -c CONFIG with a scope"
            )
        if "/" in scope:
            raise BadInput(f"cluster name {scope!r} contains '/'; pass the scope, not a key path")
        return scope

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one command's coroutine; Ctrl-C ends it quietly with exit status 1."""
        logging.getLogger("haagent").setLevel(logging.ERROR)
        return asyncio.run(coro)
