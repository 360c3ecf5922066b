"""Parser for the `postgresql` section: addresses, directories, roles, parameters."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from haagent.config.model import (
    BASEBACKUP,
    Credentials,
    PostgresqlAuthentication,
    PostgresqlSettings,
    ReplicaMethod,
)
from haagent.config.parse import (
    MISSING,
    Context,
    Section,
    check_parameter_text,
    describe,
    parse_bool,
    parse_hba_lines,
    parse_mapping,
    parse_options,
    parse_str,
    parse_str_list,
)
from haagent.config.recovery import parse_replica_recovery
from haagent.config.replica_methods import check_method_name
from haagent.config.sections import credentials, listen_and_connect, script_options

DEFAULT_BIN_DIR = PostgresqlSettings(data_dir=Path("/")).bin_dir
# The libpq connection keys Patroni accepts in postgresql.authentication.<user>.
LIBPQ_KEYS = (
    "sslmode", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
    "gssencmode", "channel_binding", "sslnegotiation",
)  # fmt: skip
LIBPQ_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslnegotiation": ("postgres", "direct"),
}
LIBPQ_FILES = ("sslcert", "sslkey", "sslrootcert", "sslcrl", "sslcrldir")
CALLBACKS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")
# Keys of a replica method's section that haagent reads; the others go to its command.
METHOD_SWITCHES = ("keep_data", "no_leader", "no_params")


def parse_postgresql(section: Section, standby_methods: tuple[str, ...] = ()) -> PostgresqlSettings:
    """The `postgresql` section; `standby_methods`: the names of
    `bootstrap.dcs.standby_cluster.create_replica_methods`, whose
    sections are read too (a name with no section runs the command of that name)."""
    ctx = section.ctx
    listen, connect = listen_and_connect(section, what="PostgreSQL", example="node1:5432")
    data_dir = section.get_path("data_dir", absolute=True)
    if data_dir is None:
        raise ctx.error(
            section.key("data_dir"), "is missing or empty", "the PostgreSQL data directory"
        )
    defaults = PostgresqlSettings(data_dir=data_dir)
    basebackup = section.get("basebackup")
    parameters = section.get("parameters")
    pg_hba = section.get("pg_hba")
    recovery_conf = section.get("recovery_conf")
    methods = _replica_methods(section)
    result = PostgresqlSettings(
        data_dir=data_dir,
        listen=listen,
        connect_address=connect,
        bin_dir=_bin_dir(section),
        config_dir=section.get_path("config_dir", absolute=True),
        pgpass=section.get_path("pgpass") or defaults.pgpass,
        authentication=_authentication(section.section("authentication")),
        parameters=_parameters(ctx, section.key("parameters"), parameters),
        pg_hba=() if pg_hba is MISSING else parse_hba_lines(ctx, section.key("pg_hba"), pg_hba),
        pg_ctl_timeout=section.get_seconds("pg_ctl_timeout", defaults.pg_ctl_timeout, minimum=1),
        use_unix_socket=section.get_bool("use_unix_socket", False),
        create_replica_methods=methods,
        other_replica_methods=_other_replica_methods(
            section, standby_methods, {m.name for m in methods}
        ),
        basebackup=()
        if basebackup is MISSING
        else parse_options(ctx, section.key("basebackup"), basebackup, allow_mapping=True),
        recovery_conf=None
        if recovery_conf is MISSING
        else parse_replica_recovery(ctx, section.key("recovery_conf"), recovery_conf),
        callbacks=_callbacks(section.section("callbacks")),
        pre_promote=_command(section, "pre_promote"),
        before_stop=_command(section, "before_stop"),
        callback_timeout=section.get_seconds(
            "callback_timeout", defaults.callback_timeout, minimum=1
        ),
        remove_data_directory_on_rewind_failure=section.get_bool(
            "remove_data_directory_on_rewind_failure", False
        ),
        remove_data_directory_on_diverged_timelines=section.get_bool(
            "remove_data_directory_on_diverged_timelines", False
        ),
    )
    section.finish()
    return result


def _bin_dir(section: Section) -> Path:
    """The directory of pg_ctl: as configured, else the default, else the one on PATH."""
    key = section.key("bin_dir")
    path = section.get_path("bin_dir", absolute=True)
    if path is None:
        on_path = shutil.which("pg_ctl")
        if (DEFAULT_BIN_DIR / "pg_ctl").exists() or on_path is None:
            path = DEFAULT_BIN_DIR
        else:
            path = Path(on_path).parent
    expected = "the directory holding pg_ctl, initdb and postgres (e.g. /usr/lib/postgresql/15/bin)"
    shown = f"{str(path)!r}" + ("" if section.has("bin_dir") else " (the default)")
    if not path.is_dir():
        raise section.ctx.error(key, f"{shown} does not exist or is not a directory", expected)
    pg_ctl = path / "pg_ctl"
    if not pg_ctl.is_file() or not os.access(pg_ctl, os.X_OK):
        raise section.ctx.error(key, f"{shown} holds no executable pg_ctl", expected)
    return path


def _authentication(section: Section) -> PostgresqlAuthentication:
    superuser = _user(section.section("superuser"), password_required=False)
    replication = _user(section.section("replication"), password_required=True)
    rewind_section = section.section("rewind")
    rewind = _user(rewind_section, password_required=False) if rewind_section.data else None
    section.finish()
    return PostgresqlAuthentication(superuser=superuser, replication=replication, rewind=rewind)


def _user(section: Section, *, password_required: bool) -> Credentials:
    """A PostgreSQL user: its name, password and the libpq keys of its connections."""
    options = _libpq_options(section)
    return replace(credentials(section, password_required=password_required), libpq=options)


def _libpq_options(section: Section) -> tuple[tuple[str, str], ...]:
    """The libpq keys Patroni accepts next to a user (TLS client certificates and the like),
    used for every connection made as that user."""
    ctx = section.ctx
    options: list[tuple[str, str]] = []
    for name in LIBPQ_KEYS:
        value = section.get(name)
        if value is MISSING:
            continue
        key = section.key(name)
        text = parse_str(ctx, key, value, what="a libpq connection setting")
        if name in LIBPQ_CHOICES and text not in LIBPQ_CHOICES[name]:
            raise ctx.error(key, f"{text!r} is not a {name}", ", ".join(LIBPQ_CHOICES[name]))
        if name in LIBPQ_FILES and not (name == "sslrootcert" and text == "system"):
            _libpq_file(section, name, text)
        options.append((name, text))
    return tuple(options)


def _libpq_file(section: Section, name: str, text: str) -> None:
    key = section.key(name)
    directory = name == "sslcrldir"
    expected = f"an absolute path to an existing {'directory' if directory else 'file'}"
    path = Path(text)
    if not path.is_absolute():
        # libpq would read it relative to each process's own directory (PostgreSQL's
        # walreceiver: the data directory), so a relative path means different files.
        raise section.ctx.error(key, f"{text!r} is a relative path", expected)
    if not (path.is_dir() if directory else path.is_file()):
        problem = "is not a directory" if directory else "is not a regular file"
        raise section.ctx.error(
            key, f"{text!r} {problem if path.exists() else 'does not exist'}", expected
        )


def _parameters(ctx: Context, key: str, value: object) -> dict[str, object]:
    what = "a mapping of PostgreSQL parameters (name: value)"
    parameters = parse_mapping(ctx, key, None if value is MISSING else value, what=what)
    for name, item in parameters.items():
        if isinstance(item, Mapping | list | tuple) or item is None:
            raise ctx.error(f"{key}.{name}", f"{describe(item)} is not a value", "a scalar")
        check_parameter_text(ctx, f"{key}.{name}", item)
    return parameters


def _replica_methods(section: Section) -> tuple[ReplicaMethod, ...]:
    """`create_replica_methods` in order, each with its section `postgresql.<method>`
    (as Patroni: a method without a section runs the command of its name)."""
    ctx = section.ctx
    key = section.key("create_replica_methods")
    value = section.get("create_replica_methods")
    if value is MISSING:
        return (ReplicaMethod(BASEBACKUP),)
    names = parse_str_list(ctx, key, value, what="replica creation methods")
    if not names:
        ctx.warn(key, "is empty: basebackup is used (as Patroni does)")
        return (ReplicaMethod(BASEBACKUP),)
    methods: list[ReplicaMethod] = []
    for i, name in enumerate(names):
        check_method_name(ctx, f"{key}[{i}]", name, [m.name for m in methods])
        if name == BASEBACKUP:
            methods.append(ReplicaMethod(BASEBACKUP))
            continue
        methods.append(_replica_method(section, name))
    return tuple(methods)


def _other_replica_methods(
    section: Section, names: tuple[str, ...], own: set[str]
) -> tuple[ReplicaMethod, ...]:
    """The sections of the methods `standby_cluster.create_replica_methods` names that
    `postgresql.create_replica_methods` (`own`) does not (with no section: the command of
    that name, as for `postgresql.create_replica_methods`)."""
    return tuple(_replica_method(section, n) for n in names if n != BASEBACKUP and n not in own)


def _replica_method(section: Section, name: str) -> ReplicaMethod:
    ctx = section.ctx
    key = section.key(name)
    data = parse_mapping(
        ctx, key, section.get(name) if section.has(name) else None,
        what="a mapping: command, keep_data, no_leader, no_params and the command's own keys",
    )  # fmt: skip
    section.ignore(name)
    switches = {
        switch: parse_bool(ctx, f"{key}.{switch}", data[switch]) if switch in data else False
        for switch in METHOD_SWITCHES
    }
    command = name
    if "command" in data:
        command = parse_str(ctx, f"{key}.command", data["command"], what="a command")
        if not command.strip():
            raise ctx.error(f"{key}.command", "is empty", "the command that builds the replica")
    options = script_options(ctx, key, {k: v for k, v in data.items() if k != "command"})
    return ReplicaMethod(
        name=name,
        command=command,
        keep_data=switches["keep_data"],
        no_leader=switches["no_leader"],
        no_params=switches["no_params"],
        options=options,
    )


def _command(section: Section, name: str) -> str | None:
    """A script setting (`pre_promote`, `before_stop`): a command line, or None."""
    text = section.get_str(name, None)
    if text is None or not text.strip():
        return None
    return text


def _callbacks(section: Section) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in section.data.items():
        if name not in CALLBACKS:
            raise section.ctx.error(
                section.key(name), "is not a callback", "one of " + ", ".join(CALLBACKS)
            )
        if value is not None:
            result[name] = parse_str(section.ctx, section.key(name), value, what="a command")
    return result
