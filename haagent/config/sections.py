"""Parsers for the small sections: restapi, ctl, etcd3, bootstrap, watchdog, tags, log."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal, cast

from haagent.config.dynamic import parse_dynamic
from haagent.config.model import (
    Address,
    BootstrapSettings,
    Credentials,
    CtlSettings,
    CustomBootstrap,
    Etcd3Settings,
    ListenAddress,
    LogSettings,
    RestApiSettings,
    Tags,
    VerifyClient,
    WatchdogMode,
    WatchdogSettings,
)
from haagent.config.parse import (
    MISSING,
    Context,
    Section,
    check_json,
    describe,
    existing_file,
    has_control_characters,
    is_hostname,
    is_wildcard,
    parse_address,
    parse_bool,
    parse_hba_lines,
    parse_listen,
    parse_mapping,
    parse_options,
    parse_str,
    parse_str_list,
)
from haagent.config.recovery import parse_bootstrap_recovery
from haagent.plugins import TESTING_DRIVER, watchdog_drivers

ETCD_DEFAULT_PORT = 2379
BOOLEAN_TAGS = ("nofailover", "noloadbalance", "clonefrom", "nosync", "nostream")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def listen_and_connect(
    section: Section, *, what: str, example: str
) -> tuple[ListenAddress, Address]:
    """`listen` and `connect_address`, each defaulting from the other.

    `connect_address` left out: the first `listen` host, unless that is a wildcard
    (`*`, `0.0.0.0`, `::`), which names no address the other nodes could use.
    `listen` left out: the `connect_address` host and port.
    """
    listen_value = section.get("listen")
    connect_value = section.get("connect_address")
    listen = (
        None
        if listen_value is MISSING
        else parse_listen(section.ctx, section.key("listen"), listen_value)
    )
    connect = (
        None
        if connect_value is MISSING
        else parse_address(
            section.ctx, section.key("connect_address"), connect_value, example=example
        )
    )
    if connect is None:
        if listen is None or is_wildcard(listen.hosts[0]):
            shown = f"listen {str(listen)!r} names no single host" if listen else "so is listen"
            raise section.ctx.error(
                section.key("connect_address"),
                f"is missing and {shown}",
                f"the host:port that the other nodes use to reach this node's {what}",
            )
        connect = Address(listen.hosts[0], listen.port)
    if listen is None:
        listen = ListenAddress((connect.host,), connect.port)
    return listen, connect


def credentials(section: Section, *, password_required: bool) -> Credentials:
    value = section.require("username", "a user name")
    username = parse_str(section.ctx, section.key("username"), value)
    if not username.strip():
        raise section.ctx.error(section.key("username"), "is missing or empty", "a user name")
    value = section.get("password")
    password = None if value is MISSING else parse_str(section.ctx, section.key("password"), value)
    if not password and password_required:
        raise section.ctx.error(section.key("password"), "is missing or empty", "a password")
    section.finish()
    return Credentials(username, password)


def parse_restapi(section: Section) -> RestApiSettings:
    listen, connect = listen_and_connect(section, what="REST API", example="node1:8008")
    auth = section.section("authentication")
    authentication = credentials(auth, password_required=True) if auth.data else None
    files = {}
    for name in ("certfile", "keyfile", "cafile"):
        path = section.get_path(name)
        files[name] = None if path is None else existing_file(section.ctx, section.key(name), path)
    if files["certfile"] and not files["keyfile"]:
        raise section.ctx.error(
            section.key("keyfile"), "is missing while certfile is set", "the certificate's key file"
        )
    if files["keyfile"] and not files["certfile"]:
        raise section.ctx.error(
            section.key("certfile"), "is missing while keyfile is set", "the certificate file"
        )
    verify_client = _verify_client(section)
    if verify_client != "none":
        for name in ("certfile", "cafile"):
            if not files[name]:
                raise section.ctx.error(
                    section.key(name),
                    f"is missing while verify_client is {verify_client}",
                    "TLS (certfile, keyfile) and a cafile to check client certificates",
                )
    result = RestApiSettings(
        listen=listen,
        connect_address=connect,
        authentication=authentication,
        certfile=files["certfile"],
        keyfile=files["keyfile"],
        keyfile_password=section.get_str("keyfile_password", None),
        cafile=files["cafile"],
        verify_client=verify_client,
        allowlist=_allowlist(section),
        allowlist_include_members=section.get_bool("allowlist_include_members", False),
    )
    section.finish()
    return result


def _verify_client(section: Section) -> VerifyClient:
    value = section.get_str("verify_client", "none")
    if value not in ("none", "optional", "required"):
        raise section.ctx.error(
            section.key("verify_client"), f"{value!r} is not a mode", "none, optional or required"
        )
    return cast(VerifyClient, value)


def _allowlist(section: Section) -> tuple[str, ...]:
    value = section.get("allowlist")
    if value is MISSING:
        return ()
    what = "IP addresses, networks (10.0.0.0/24) or hostnames"
    entries = parse_str_list(section.ctx, section.key("allowlist"), value, what=what)
    for i, entry in enumerate(entries):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            if not is_hostname(entry.strip()):
                raise section.ctx.error(
                    f"{section.key('allowlist')}[{i}]",
                    f"{entry!r} is not an address, network or hostname",
                    what,
                ) from None
    return tuple(entry.strip() for entry in entries)


def parse_ctl(section: Section) -> CtlSettings:
    """Patroni's `ctl` section (TLS and credentials for calls to the members' REST APIs)."""
    auth = section.section("authentication")
    files = {}
    for name in ("cacert", "certfile", "keyfile"):
        path = section.get_path(name)
        files[name] = None if path is None else existing_file(section.ctx, section.key(name), path)
    if files["keyfile"] and not files["certfile"]:
        raise section.ctx.error(
            section.key("certfile"), "is missing while keyfile is set", "the certificate file"
        )
    result = CtlSettings(
        insecure=section.get_bool("insecure", False),
        cacert=files["cacert"],
        certfile=files["certfile"],
        keyfile=files["keyfile"],
        keyfile_password=section.get_str("keyfile_password", None),
        authentication=credentials(auth, password_required=True) if auth.data else None,
    )
    section.finish()
    return result


def parse_etcd3(section: Section) -> Etcd3Settings:
    ctx = section.ctx
    for name in ("url", "proxy", "srv", "srv_suffix", "use_proxies"):
        if section.has(name):
            raise ctx.error(
                section.key(name), "is not supported", "the etcd members in hosts: [host:port, ...]"
            )
    protocol_value = section.get_str("protocol", None)
    if protocol_value not in (None, "http", "https"):
        raise ctx.error(
            section.key("protocol"), f"{protocol_value!r} is not a protocol", "http or https"
        )
    schemes: set[str] = set()
    hosts = _etcd_hosts(section, schemes)
    if protocol_value is not None and schemes - {protocol_value}:
        raise ctx.error(
            section.key("protocol"),
            f"{protocol_value} contradicts the {'/'.join(sorted(schemes))}:// in the hosts",
            "one protocol for all etcd members",
        )
    files = {}
    for name in ("cacert", "cert", "key"):
        path = section.get_path(name)
        files[name] = None if path is None else existing_file(ctx, section.key(name), path)
    if bool(files["cert"]) != bool(files["key"]):
        missing = "key" if files["cert"] else "cert"
        raise ctx.error(
            section.key(missing),
            f"is missing while {'cert' if missing == 'key' else 'key'} is set",
            "both cert and key for a TLS client certificate",
        )
    username = section.get_str("username", None)
    password = section.get_str("password", None)
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise ctx.error(
            section.key(missing), "is missing", "both username and password, or neither"
        )
    tls = bool(schemes & {"https"} or files["cacert"] or files["cert"])
    protocol = protocol_value or ("https" if tls else "http")
    result = Etcd3Settings(
        hosts=hosts,
        protocol=cast(Literal["http", "https"], protocol),
        username=username,
        password=password,
        cacert=files["cacert"],
        cert=files["cert"],
        key=files["key"],
    )
    section.finish()
    return result


def _etcd_hosts(section: Section, schemes: set[str]) -> tuple[Address, ...]:
    ctx = section.ctx
    what = "etcd members as host:port (a list, or one comma-separated string)"
    host, hosts = section.get("host"), section.get("hosts")
    if host is not MISSING and hosts is not MISSING:
        ctx.warn(section.key("host"), "both host and hosts are set; hosts is used")
    if hosts is not MISSING:
        key = section.key("hosts")
        if isinstance(hosts, str):
            items = [(key, item) for item in hosts.split(",")]
        elif isinstance(hosts, list) and hosts:
            items = [(f"{key}[{i}]", item) for i, item in enumerate(hosts)]
        elif isinstance(hosts, list):
            raise ctx.error(key, "is an empty list", what)
        else:
            raise ctx.error(key, f"{describe(hosts)} is not a list", what)
    elif host is not MISSING:
        items = [(section.key("host"), host)]
    else:
        return Etcd3Settings().hosts
    result = []
    for key, item in items:
        if isinstance(item, str) and "://" in item:
            scheme, _, item = item.strip().partition("://")
            if scheme not in ("http", "https"):
                raise ctx.error(key, f"{scheme}:// is not an etcd protocol", "http:// or https://")
            schemes.add(scheme)
            item = item.rstrip("/")
        result.append(
            parse_address(ctx, key, item, default_port=ETCD_DEFAULT_PORT, example="node1:2379")
        )
    return tuple(result)


def script_options(ctx: Context, key: str, data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A script's own keys (a replica method's, a custom bootstrap's), each passed as
    `--key=value` and rendered as Patroni renders it: `True`/`False`, numbers as written."""
    options: list[tuple[str, str]] = []
    for name, value in data.items():
        item_key = f"{key}.{name}"
        if not name or any(c.isspace() or c == "=" for c in name):
            raise ctx.error(item_key, f"{name!r} is not an option name", "a name without spaces")
        if isinstance(value, Mapping | list | tuple) or value is None:
            raise ctx.error(item_key, f"{describe(value)} is not a value", "text, a number or true")
        text = str(value)
        if has_control_characters(text):
            raise ctx.error(item_key, f"{text!r} contains control characters", "one line")
        options.append((name, text))
    return tuple(options)


# The keys of a custom bootstrap method's section that haagent reads; the others go to
# its command as --key=value.  `scope` and `datadir` are the ones haagent passes.
CUSTOM_BOOTSTRAP_KEYS = ("command", "keep_existing_recovery_conf", "no_params", "recovery_conf")


def _custom_bootstrap(section: Section, method: str) -> CustomBootstrap:
    """`bootstrap.<method>`: the command that makes the data directory, and its recovery."""
    ctx = section.ctx
    key = section.key(method)
    if method in ("dcs", "initdb", "pg_hba", "post_bootstrap", "post_init", "users", "method"):
        raise ctx.error(
            section.key("method"),
            f"{method!r} is the name of a bootstrap setting, so it cannot name the method's "
            "section",
            "initdb, or the name of a section bootstrap.<name> with a command",
        )
    if not section.has(method):
        raise ctx.error(
            key,
            f"is missing while bootstrap.method is {method}",
            f"a section bootstrap.{method} with the command that makes the data directory",
        )
    data = parse_mapping(ctx, key, section.get(method), what="a mapping with a command")
    if not isinstance(data.get("command"), str) or not data["command"].strip():
        raise ctx.error(
            f"{key}.command",
            "is missing or empty"
            if "command" not in data
            else f"{describe(data['command'])} is not a command",
            "the command that makes the data directory (a restore from a backup, say)",
        )
    keep = parse_bool(ctx, f"{key}.keep_existing_recovery_conf",
                      data.get("keep_existing_recovery_conf", False))  # fmt: skip
    recovery = None
    if data.get("recovery_conf") is not None:
        if keep:
            raise ctx.error(
                f"{key}.recovery_conf",
                "is set while keep_existing_recovery_conf is true",
                "one of them: haagent's recovery settings, or those the command wrote",
            )
        recovery = parse_bootstrap_recovery(ctx, f"{key}.recovery_conf", data["recovery_conf"])
    own = {k: v for k, v in data.items() if k not in CUSTOM_BOOTSTRAP_KEYS}
    return CustomBootstrap(
        name=method,
        command=data["command"],
        keep_existing_recovery_conf=keep,
        no_params=parse_bool(ctx, f"{key}.no_params", data.get("no_params", False)),
        recovery_conf=recovery,
        options=script_options(ctx, key, own),
    )


def parse_bootstrap(section: Section) -> BootstrapSettings:
    ctx = section.ctx
    method = section.get_str("method", None) or "initdb"
    custom = None if method == "initdb" else _custom_bootstrap(section, method)
    section.ignore(method)
    if section.has("users"):
        section.ignore("users")
        ctx.warn(
            section.key("users"),
            "not supported (Patroni 4 dropped it too), ignored; create roles in post_bootstrap",
        )
    dcs = parse_dynamic(ctx, section.key("dcs"), section.data.get("dcs"))
    section.ignore("dcs")
    initdb = section.get("initdb")
    if custom is not None and initdb is not MISSING:
        ctx.warn(section.key("initdb"), f"not used: bootstrap.method is {method}, not initdb")
    pg_hba = section.get("pg_hba")
    post = section.get_str("post_bootstrap", None)
    if post is None:
        post = section.get_str("post_init", None)
    section.ignore("post_init")
    result = BootstrapSettings(
        dcs=dcs,
        initdb=() if initdb is MISSING else parse_options(ctx, section.key("initdb"), initdb),
        pg_hba=() if pg_hba is MISSING else parse_hba_lines(ctx, section.key("pg_hba"), pg_hba),
        post_bootstrap=post,
        custom=custom,
    )
    section.finish()
    return result


def parse_watchdog(section: Section) -> WatchdogSettings:
    ctx = section.ctx
    key = section.key("mode")
    mode = section.get("mode")
    # YAML reads a bare `off` as false (and `on` as true).
    if isinstance(mode, bool):
        mode = "automatic" if mode else "off"
    elif mode is MISSING:
        mode = WatchdogSettings().mode
    if not isinstance(mode, str) or mode.strip().lower() not in ("off", "automatic", "required"):
        raise ctx.error(
            key, f"{describe(mode)} is not a watchdog mode", "off, automatic or required"
        )
    margin_key = section.key("safety_margin")
    margin = section.get_int("safety_margin", 5, what="a number of seconds")
    if margin < 0:
        raise ctx.error(
            margin_key,
            f"{margin} is negative (Patroni's -1, 'half of ttl', is not supported)",
            "a whole number of seconds >= 0",
        )
    driver = section.get_str("driver", "linux") or ""
    driver = "linux" if driver == "default" else driver
    if driver != "linux":
        check_watchdog_driver(ctx, section.key("driver"), driver)
    result = WatchdogSettings(
        mode=cast(WatchdogMode, mode.strip().lower()),
        device=section.get_str("device", "/dev/watchdog") or "/dev/watchdog",
        safety_margin=margin,
        driver=driver,
        agent_death_guard=section.get_bool("agent_death_guard", True),
    )
    section.finish()
    return result


def check_watchdog_driver(ctx: Context, key: str, driver: str) -> None:
    """A driver other than `linux` must be one an installed package adds (haagent.plugins)."""
    extra = watchdog_drivers()
    if driver in extra:
        return
    expected = " or ".join(["linux", *sorted(extra)])
    if driver == TESTING_DRIVER:
        raise ctx.error(
            key,
            "'testing' (the client of haagent's watchdog simulator) is for haagent's own tests "
            "and lab only, and their harness is not installed here",
            f"{expected} (a real watchdog device), or watchdog.mode: off",
        )
    raise ctx.error(key, f"{driver!r} is not a driver", expected)


def parse_tags(section: Section) -> Tags:
    check_json(section.ctx, section.path, section.data)
    failover_priority = section.get_int(
        "failover_priority", 1, what="a priority (0 = never promote)", minimum=0
    )
    switches = {name: section.get_bool(name, False) for name in BOOLEAN_TAGS}
    nofailover = switches["nofailover"]
    section.get_int("sync_priority", 1, what="a priority (0 = never synchronous)")
    if nofailover and section.has("failover_priority") and failover_priority > 0:
        section.ctx.warn(
            section.key("failover_priority"), "ignored: nofailover is true, so never promoted"
        )
    return Tags(
        nofailover=nofailover,
        noloadbalance=switches["noloadbalance"],
        clonefrom=switches["clonefrom"],
        nosync=switches["nosync"],
        nostream=switches["nostream"],
        failover_priority=failover_priority,
        replicatefrom=section.get_str("replicatefrom", None),
        raw=published_tags(section.data, switches),
    )  # Custom tags are allowed: no unknown-key warnings here.


def published_tags(tags: Mapping[str, Any], switches: Mapping[str, bool]) -> dict[str, Any]:
    """The tags as Patroni publishes them: a predefined boolean tag that is false is left
    out, except `nofailover` next to `failover_priority` and `nosync` next to
    `sync_priority` (together they say which one decides)."""
    kept_with = {"nofailover": "failover_priority", "nosync": "sync_priority"}
    return {
        name: value
        for name, value in tags.items()
        if name not in switches or switches[name] or kept_with.get(name, "") in tags
    }


def parse_log(section: Section) -> LogSettings:
    level = (section.get_str("level", "INFO") or "INFO").strip().upper()
    if level not in _LOG_LEVELS:
        raise section.ctx.error(
            section.key("level"), f"{level!r} is not a log level", ", ".join(_LOG_LEVELS)
        )
    result = LogSettings(
        level=level,
        format=section.get_str("format", LogSettings().format) or LogSettings().format,
        dir=section.get_path("dir", absolute=True),
    )
    section.finish()
    return result
