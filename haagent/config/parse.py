"""Primitive parsers shared by the section parsers: typed getters, addresses, sizes.

Every parser takes the key path of the value so that its error names it.  `Section`
wraps one YAML mapping, hands out typed values and, when done, warns about the keys
nobody asked for (a typo should be visible, not silently ignored).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haagent.config.errors import ConfigError
from haagent.config.model import Address, ListenAddress

MISSING: Any = object()

_TRUE = frozenset({"on", "true", "yes", "y", "1"})
_FALSE = frozenset({"off", "false", "no", "n", "0"})
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
_NUMBER_WITH_UNIT = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MEMBER_NAME_RULE = "letters, digits, '_', '.' and '-' (at most 128)"


def is_member_name(text: str) -> bool:
    """A member name haagent accepts: from the config, from etcd keys and values."""
    return bool(_MEMBER_NAME.fullmatch(text))


def has_control_characters(text: str) -> bool:
    """Control characters (a line break would end a postgresql.conf or pg_hba.conf line)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


@dataclass
class Context:
    """Where values come from, for error messages, and the warnings found so far."""

    file: Path | None = None
    origin: str = "<config>"
    warnings: list[str] = field(default_factory=list)
    # Key paths whose value came from an environment variable -> the variable's name.
    env_keys: dict[str, str] = field(default_factory=dict)

    def error(self, key: str, problem: str, expected: str | None = None) -> ConfigError:
        """The error for `key`, blamed on the environment variable that set it, if one did."""
        for path, variable in self.env_keys.items():
            if key == path or key.startswith((f"{path}.", f"{path}[")):
                return ConfigError(variable, problem, expected, origin="environment")
        below = sorted(v for p, v in self.env_keys.items() if p.startswith(f"{key}."))
        if below:  # a section the variables made or filled
            problem = f"{problem} (set by {', '.join(below)})"
        return ConfigError(key, problem, expected, file=self.file, origin=self.origin)

    def warn(self, key: str, message: str) -> None:
        where = str(self.file) if self.file is not None else self.origin
        self.warnings.append(f"{where}: {key}: {message}")


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def describe(value: object) -> str:
    """A short rendering of a bad value for a message (`'abc'`, `a list`, `true`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_bool(ctx: Context, key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ctx.error(key, f"{describe(value)} is not a boolean", "true or false (or on/off, yes/no)")


def parse_int(
    ctx: Context, key: str, value: object, *, what: str = "an integer", minimum: int | None = None
) -> int:
    number: int | None = None
    whole_float = isinstance(value, float) and value.is_integer()
    digits = isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value) is not None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float | str) and (whole_float or digits):
        number = int(value)
    if number is None:
        raise ctx.error(key, f"{describe(value)} is not a whole number", what)
    if minimum is not None and number < minimum:
        raise ctx.error(key, f"{number} is too small", f"{what} >= {minimum}")
    return number


def duration_seconds(text: str) -> float | None:
    """Seconds of a duration such as `90`, `90s`, `30min`, `2h` or `1d`; None if it is not one."""
    match = _NUMBER_WITH_UNIT.match(text)
    if match is None:
        return None
    unit = match.group(2).lower() or "s"
    factor = _DURATION_UNITS.get(unit, {"m": 60}.get(unit))
    return None if factor is None else int(match.group(1)) * factor


def parse_seconds(ctx: Context, key: str, value: object, *, minimum: int | None = None) -> int:
    """Whole seconds: `30`, `"30"`, or with a unit: `"30s"`, `"5min"`, `"1h"`, `"1d"`."""
    what = "an integer number of seconds"
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if match and match.group(2).lower() in _DURATION_UNITS:
            value = int(int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])
    return parse_int(ctx, key, value, what=what, minimum=minimum)


def parse_bytes(ctx: Context, key: str, value: object, *, minimum: int | None = None) -> int:
    """A size in bytes: `1048576`, or with a unit: `"16kB"`, `"1MB"`, `"2GB"`."""
    what = "a size in bytes (a whole number, or with a unit such as 16MB)"
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            value = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    return parse_int(ctx, key, value, what=what, minimum=minimum)


def parse_str(ctx: Context, key: str, value: object, *, what: str = "a string") -> str:
    """Text; numbers are accepted and turned into text (YAML reads `name: 1` as a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ctx.error(key, f"{describe(value)} is not text", what)


def parse_path(ctx: Context, key: str, value: object, *, absolute: bool = False) -> Path:
    text = parse_str(ctx, key, value, what="a file system path")
    if not text.strip():
        raise ctx.error(key, "is empty", "a file system path")
    path = Path(text).expanduser()
    if absolute and not path.is_absolute():
        raise ctx.error(key, f"{text!r} is a relative path", "an absolute path (starting with /)")
    return path


def parse_str_list(ctx: Context, key: str, value: object, *, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ctx.error(key, f"{describe(value)} is not a list", f"a list of {what}")
    return tuple(parse_str(ctx, f"{key}[{i}]", item, what=what) for i, item in enumerate(value))


def parse_hba_lines(ctx: Context, key: str, value: object) -> tuple[str, ...]:
    """`pg_hba` lines, without control characters; a `host` line with the `trust` method
    is warned about (no password is asked of anyone who can reach the address)."""
    lines = parse_str_list(ctx, key, value, what="pg_hba lines")
    for i, line in enumerate(lines):
        if has_control_characters(line):
            raise ctx.error(
                f"{key}[{i}]", f"{line!r} contains control characters", "one pg_hba line"
            )
        fields = line.split("#", 1)[0].split()
        if fields and fields[0].startswith("host") and "trust" in fields[3:]:
            ctx.warn(
                f"{key}[{i}]",
                f"{line.strip()!r} lets anyone who reaches that address in without a password;"
                " use scram-sha-256",
            )
    return lines


def check_parameter_text(ctx: Context, key: str, value: object) -> None:
    """A PostgreSQL parameter value goes on one postgresql.conf line: no control characters."""
    if isinstance(value, str) and has_control_characters(value):
        raise ctx.error(
            key, f"{value!r} contains control characters", "a value on one line, printable"
        )


def parse_mapping(ctx: Context, key: str, value: object, *, what: str) -> dict[str, Any]:
    """A mapping with text keys; YAML `key:` with nothing after it is an empty mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(key, f"{describe(value)} is not a mapping", what)
    result: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ctx.error(join(key, str(k)), f"key {describe(k)} is not text", "text keys")
        result[k] = v
    return result


def parse_options(
    ctx: Context, key: str, value: object, *, allow_mapping: bool = False
) -> tuple[str | tuple[str, str], ...]:
    """Command-line options written as in Patroni: `[data-checksums, {encoding: UTF8}]`."""
    what = "a list of switches (data-checksums) and one-key mappings ({encoding: UTF8})"
    if allow_mapping and isinstance(value, Mapping):
        value = [{k: v} for k, v in value.items()]
    if not isinstance(value, list | tuple):
        raise ctx.error(key, f"{describe(value)} is not a list", what)
    options: list[str | tuple[str, str]] = []
    for i, item in enumerate(value):
        item_key = f"{key}[{i}]"
        if isinstance(item, str) and item.strip():
            options.append(item.strip())
        elif isinstance(item, Mapping) and len(item) == 1:
            ((name, option_value),) = item.items()
            if not isinstance(name, str) or not name.strip():
                raise ctx.error(item_key, f"option name {describe(name)} is not text", what)
            if isinstance(option_value, Mapping | list | tuple) or option_value is None:
                raise ctx.error(
                    join(item_key, name), f"{describe(option_value)} is not a value", "a scalar"
                )
            if isinstance(option_value, bool):
                option_value = "on" if option_value else "off"
            options.append((name.strip(), str(option_value)))
        elif isinstance(item, Mapping):
            raise ctx.error(item_key, f"a mapping of {len(item)} keys is not one option", what)
        else:
            raise ctx.error(item_key, f"{describe(item)} is not an option", what)
    return tuple(options)


def check_json(ctx: Context, key: str, value: object) -> None:
    """Values published as JSON (tags, the DCS config) must be JSON: no YAML dates or sets."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ctx.error(join(key, str(k)), f"key {describe(k)} is not text", "text keys")
            check_json(ctx, join(key, k), v)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(ctx, f"{key}[{i}]", item)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ctx.error(
            key, f"{value!s} is a {type(value).__name__}", "text, a number or true/false (quote it)"
        )


def existing_file(ctx: Context, key: str, path: Path) -> Path:
    if not path.is_file():
        problem = "is not a regular file" if path.exists() else "does not exist"
        raise ctx.error(key, f"{str(path)!r} {problem}", "an existing file")
    return path


def is_hostname(text: str) -> bool:
    return bool(_HOSTNAME.match(text)) and not text.replace(".", "").isdigit()


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _port(ctx: Context, key: str, text: str, expected: str) -> int:
    if not text.strip().isdigit():
        raise ctx.error(key, f"port {text.strip()!r} is not a number", expected)
    port = int(text)
    if not 1 <= port <= 65535:
        raise ctx.error(key, f"port {port} is out of range", "a port in 1..65535")
    return port


def _split_host(ctx: Context, key: str, text: str, expected: str) -> tuple[str, str | None]:
    """`host:port` or `[v6]:port` -> (host, port text or None when there is no port)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")) or not is_ip(host):
            raise ctx.error(key, f"{text!r} is not a valid [IPv6]:port", expected)
        return host, rest[1:] if rest else None
    if text.count(":") > 1:
        raise ctx.error(key, f"{text!r} has more than one ':'", f"{expected} ([v6addr]:port)")
    host, colon, port = text.partition(":")
    return host, port if colon else None


def _check_host(ctx: Context, key: str, host: str, expected: str) -> None:
    if not (is_ip(host) or is_hostname(host)):
        shown = repr(host) if host else "an empty host"
        raise ctx.error(key, f"{shown} is not a hostname or IP address", expected)


def parse_address(
    ctx: Context,
    key: str,
    value: object,
    *,
    default_port: int | None = None,
    example: str = "node1:8008",
) -> Address:
    """`host:port` (IPv6 as `[addr]:port`); the port may be left out when it has a default."""
    expected = f"host:port, for example {example}"
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, f"{describe(value)} is not an address", expected)
    host, port = _split_host(ctx, key, value.strip(), expected)
    if port is None:
        if default_port is None:
            raise ctx.error(key, f"{value.strip()!r} has no port", expected)
        port = str(default_port)
    _check_host(ctx, key, host, expected)
    return Address(host, _port(ctx, key, port, expected))


def parse_listen(ctx: Context, key: str, value: object) -> ListenAddress:
    """`host:port`, `h1,h2:port`, `*:port`, `0.0.0.0:port`; IPv6 hosts may go unbracketed."""
    expected = "host:port, h1,h2:port or *:port"
    if not isinstance(value, str) or ":" not in value:
        raise ctx.error(key, f"{describe(value)} is not a listen address", expected)
    hosts_text, _, port_text = value.strip().rpartition(":")
    port = _port(ctx, key, port_text, expected)
    hosts: list[str] = []
    for raw_host in hosts_text.split(","):
        host = raw_host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host != "*":
            _check_host(ctx, key, host, expected)
        hosts.append(host)
    return ListenAddress(tuple(hosts), port)


def is_wildcard(host: str) -> bool:
    return host in ("*", "0.0.0.0", "::")


class Section:
    """One mapping of the config, read key by key; `finish()` warns about the unread keys."""

    def __init__(self, ctx: Context, path: str, value: object, *, what: str = "a mapping") -> None:
        self.ctx = ctx
        self.path = path
        self.data = parse_mapping(ctx, path or "<yaml>", value, what=what)
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        return join(self.path, name)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def get(self, name: str) -> Any:
        """The value, or MISSING when absent or empty (`key:` with nothing after it)."""
        self._read.add(name)
        value = self.data.get(name)
        return MISSING if value is None else value

    def require(self, name: str, expected: str) -> Any:
        value = self.get(name)
        if value is MISSING:
            raise self.ctx.error(self.key(name), "is missing or empty", expected)
        return value

    def section(self, name: str) -> Section:
        value = self.get(name)
        return Section(self.ctx, self.key(name), None if value is MISSING else value)

    def ignore(self, *names: str) -> None:
        self._read.update(names)

    def finish(self, message: str = "unknown key, ignored") -> None:
        for name in self.data:
            if name not in self._read:
                self.ctx.warn(self.key(name), message)

    # Typed getters: `default` is returned when the key is absent or empty.
    def get_bool(self, name: str, default: bool) -> bool:
        value = self.get(name)
        return default if value is MISSING else parse_bool(self.ctx, self.key(name), value)

    def get_int(self, name: str, default: int, *, what: str, minimum: int | None = None) -> int:
        value = self.get(name)
        if value is MISSING:
            return default
        return parse_int(self.ctx, self.key(name), value, what=what, minimum=minimum)

    def get_seconds(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self.get(name)
        if value is MISSING:
            return default
        return parse_seconds(self.ctx, self.key(name), value, minimum=minimum)

    def get_str(self, name: str, default: str | None) -> str | None:
        value = self.get(name)
        return default if value is MISSING else parse_str(self.ctx, self.key(name), value)

    def get_path(self, name: str, *, absolute: bool = False) -> Path | None:
        value = self.get(name)
        if value is MISSING:
            return None
        return parse_path(self.ctx, self.key(name), value, absolute=absolute)
