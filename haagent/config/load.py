"""Load one node's YAML file (Patroni's format) into `Settings`, or say what is wrong.

Loading stops at the first problem with one `ConfigError` naming the file, the key path
and what was expected.  Keys haagent does not know give warnings, not errors.

Defaults worth knowing:
- `restapi.connect_address` / `postgresql.connect_address` may be left out when `listen`
  names a concrete host (`node1:8008`): the first listen host is used.  With a wildcard
  listen (`*`, `0.0.0.0`, `::`) they are required.  `listen` left out listens on the
  connect address.
- `etcd3` is required (an empty `etcd3:` means 127.0.0.1:2379); `host` and `hosts`
  without a port use 2379.
- `postgresql.bin_dir` left out: /usr/lib/postgresql/15/bin, else the directory of the
  pg_ctl on PATH.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from haagent.config.dynamic import dynamic_config_to_dict, parse_dynamic_config
from haagent.config.environ import apply_environment
from haagent.config.errors import ConfigError
from haagent.config.model import DEFAULT_NAMESPACE, DynamicConfig, Settings
from haagent.config.parse import (
    MEMBER_NAME_RULE,
    Context,
    Section,
    describe,
    is_member_name,
    parse_str,
)
from haagent.config.postgresql import parse_postgresql
from haagent.config.sections import (
    parse_bootstrap,
    parse_ctl,
    parse_etcd3,
    parse_log,
    parse_restapi,
    parse_tags,
    parse_watchdog,
)

log = logging.getLogger("haagent.config")

# Without a config file, the whole YAML may come from one of these (Patroni's is the second).
CONFIGURATION_VARIABLES = ("HAAGENT_CONFIGURATION", "PATRONI_CONFIGURATION")
OTHER_DCS = ("etcd", "consul", "zookeeper", "exhibitor", "kubernetes", "raft")


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate `path`; warnings are logged on the `haagent.config` logger.

    `environ` defaults to `os.environ` (pass `{}` to ignore HAAGENT_*/PATRONI_* variables).
    """
    settings, warnings = load_settings_with_warnings(path, environ)
    for warning in warnings:
        log.warning("%s", warning)
    return settings


def load_settings_with_warnings(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Settings, list[str]]:
    """Like `load_settings`, returning the warnings (one line each) instead of logging them.

    Without a file (`path` None), as Patroni: the YAML held by HAAGENT_CONFIGURATION or
    PATRONI_CONFIGURATION, or else the HAAGENT_*/PATRONI_* variables alone.
    """
    if path is None:
        return _from_environment(os.environ if environ is None else environ)
    data = read_yaml(Path(path))
    if not isinstance(data, Mapping):
        problem = "the file is empty" if data is None else f"the document is {describe(data)}"
        raise ConfigError(
            "<yaml>", problem, "a mapping of sections (scope, name, restapi, ...)", file=path
        )
    return parse_settings_with_warnings(data, source=Path(path), environ=environ)


def _from_environment(environ: Mapping[str, str]) -> tuple[Settings, list[str]]:
    for variable in CONFIGURATION_VARIABLES:
        text = environ.get(variable)
        if not text:
            continue
        try:
            data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(
                variable, f"not valid YAML: {exc}", "the config file's YAML", origin="environment"
            ) from None
        if not isinstance(data, Mapping):
            raise ConfigError(
                variable, f"the document is {describe(data)}",
                "a mapping of sections (scope, name, restapi, ...)", origin="environment",
            )  # fmt: skip
        return parse_settings_with_warnings(data, environ=environ, origin=variable)
    return parse_settings_with_warnings({}, environ=environ, origin="environment")


def parse_settings(
    data: Mapping[str, Any], *, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate an already-read config mapping; `source` is named in messages."""
    settings, warnings = parse_settings_with_warnings(data, source=source, environ=environ)
    for warning in warnings:
        log.warning("%s", warning)
    return settings


def parse_settings_with_warnings(
    data: Mapping[str, Any],
    *,
    source: Path | None = None,
    environ: Mapping[str, str] | None = None,
    origin: str = "<config>",
) -> tuple[Settings, list[str]]:
    ctx = Context(file=source, origin=origin)
    data = apply_environment(ctx, data, os.environ if environ is None else environ)
    top = Section(ctx, "", data, what="a mapping of sections (scope, name, restapi, ...)")
    scope = _name(top, "scope", "the cluster name, the same on every node")
    name = _name(top, "name", "this node's name, unique in the cluster")
    namespace = top.get_str("namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE
    _check_dcs_sections(top)
    top.require("postgresql", "a postgresql section (data_dir, authentication, ...)")
    bootstrap = parse_bootstrap(top.section("bootstrap"))
    settings = Settings(
        scope=scope,
        name=name,
        namespace=namespace,
        restapi=parse_restapi(top.section("restapi")),
        ctl=parse_ctl(top.section("ctl")),
        etcd3=parse_etcd3(top.section("etcd3")),
        bootstrap=bootstrap,
        postgresql=parse_postgresql(
            top.section("postgresql"),
            _standby_methods(bootstrap.dcs),
        ),
        watchdog=parse_watchdog(top.section("watchdog")),
        tags=parse_tags(top.section("tags")),
        log=parse_log(top.section("log")),
        source=source,
    )
    top.finish()
    _check_watchdog_margin(ctx, settings)
    return settings, ctx.warnings


def _standby_methods(dcs: DynamicConfig) -> tuple[str, ...]:
    standby = dcs.standby_cluster
    return standby.create_replica_methods if standby is not None else ()


def _name(top: Section, key: str, expected: str) -> str:
    value = parse_str(top.ctx, key, top.require(key, expected))
    if not value.strip():
        raise top.ctx.error(key, "is missing or empty", expected)
    if "/" in value:
        raise top.ctx.error(key, f"{value!r} contains '/'", f"{expected}, without '/'")
    if not value.isprintable():
        raise top.ctx.error(key, f"{value!r} contains control characters", expected)
    if key == "name" and not is_member_name(value):
        raise top.ctx.error(
            key, f"{value!r} is not a member name", f"{expected}: {MEMBER_NAME_RULE}"
        )
    return value


def _check_dcs_sections(top: Section) -> None:
    others = [name for name in OTHER_DCS if top.has(name)]
    top.ignore(*others)
    if not top.has("etcd3"):
        if others:
            raise top.ctx.error(
                others[0],
                f"haagent does not support {others[0]} (only the etcd v3 API)",
                "an etcd3 section with hosts: [host:port, ...]",
            )
        raise top.ctx.error("etcd3", "is missing", "an etcd3 section with hosts: [host:port, ...]")
    for other in others:
        top.ctx.warn(other, "not supported (haagent uses etcd3 only), ignored")


def _check_watchdog_margin(ctx: Context, settings: Settings) -> None:
    watchdog, ttl = settings.watchdog, settings.bootstrap.dcs.ttl
    if watchdog.mode != "off" and watchdog.safety_margin >= ttl:
        raise ctx.error(
            "watchdog.safety_margin",
            f"{watchdog.safety_margin} is not below bootstrap.dcs.ttl {ttl}",
            "a margin shorter than ttl (the watchdog fires ttl - safety_margin seconds "
            "after the last keepalive)",
        )


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML would silently keep the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    seen: dict[Hashable, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable) and key in seen:
            first = seen[key]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1})",
                key_node.start_mark,
            )
        if isinstance(key, Hashable):
            seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> object:
    """The YAML document of `path`; unreadable files and syntax errors are `ConfigError`s."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            "<file>", f"cannot read it: {reason}", "a readable YAML file", file=path
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "<file>", f"not UTF-8 text (byte {exc.start})", "a UTF-8 YAML file", file=path
        ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError("<yaml>", f"{where}{problem}", "valid YAML", file=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError("<yaml>", str(exc), "valid YAML", file=path) from None


__all__ = [
    "dynamic_config_to_dict",
    "load_settings",
    "load_settings_with_warnings",
    "parse_dynamic_config",
    "parse_settings",
    "parse_settings_with_warnings",
    "read_yaml",
]
