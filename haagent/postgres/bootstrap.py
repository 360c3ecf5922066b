"""Bootstrapping a new cluster: initdb (or a custom method), haagent's config, roles,
post_bootstrap.

A custom method (`bootstrap.method`, Patroni's) makes the data directory with the
user's command, typically a restore from a backup: `command --scope=S --datadir=D
[--key=value ...]`.  Its first start runs the recovery its `recovery_conf` asks for (a
point in time, with recovery.signal and hot_standby off), or the one the command wrote
itself (`keep_existing_recovery_conf`); the bootstrap goes on once PostgreSQL has left
recovery (`recovery_target_action: promote`), with a restart in haagent's own config.

A failed bootstrap removes what it made (it was an empty or missing directory
before), so another attempt, or another member, can start clean.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from psycopg import sql

from haagent.config.model import Credentials, CustomBootstrap
from haagent.postgres import files, libpq
from haagent.postgres.conf import conninfo
from haagent.postgres.errors import (
    BootstrapError,
    ConfigurationError,
    DataDirectoryError,
    PostgresError,
)
from haagent.postgres.instance import Instance, log
from haagent.postgres.layout import check_owned, owner_name
from haagent.postgres.proc import run, tool_env
from haagent.postgres.session import Conn, connection, query

Options = Sequence[str | tuple[str, str]]
_OPTION = re.compile(r"^[a-z][a-z0-9-]*$")
# Set by haagent from other settings; refused in the user's option lists.
INITDB_RESERVED = {"pgdata", "D", "username", "U", "pwfile", "pwprompt", "W", "waldir"}
# The script's sessions, as Patroni sets them: its writes need no synchronous standby (there
# is none yet) and no statement limit.
POST_BOOTSTRAP_OPTIONS = "-c synchronous_commit=local -c statement_timeout=0"
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def tool_options(options: Options, key: str, reserved: set[str]) -> list[str]:
    """`["data-checksums", ("encoding", "UTF8")]` -> `["--data-checksums", "--encoding=UTF8"]`."""
    args = []
    for option in options:
        name, value = (option, None) if isinstance(option, str) else option
        name = name.lstrip("-")
        if not _OPTION.match(name) and name not in reserved:
            raise ConfigurationError(f"{key}: {option!r} is not an option name")
        if name in reserved:
            raise ConfigurationError(
                f"{key}: {name!r} is set by haagent (from postgresql.data_dir and "
                "postgresql.authentication); remove it"
            )
        args.append(f"--{name}" if value is None else f"--{name}={value}")
    return args


# initdb's own default is `trust` for every local connection, TCP included.
INITDB_AUTH = (("auth-local", "peer"), ("auth-host", "scram-sha-256"))


def initdb_args(options: Options) -> list[str]:
    """The user's `bootstrap.initdb` options, with haagent's safe authentication defaults
    (`--auth-local=peer --auth-host=scram-sha-256`, not initdb's `trust`) for the ones
    the user did not choose."""
    args = tool_options(options, "bootstrap.initdb", INITDB_RESERVED)
    chosen = {arg.split("=", 1)[0][2:] for arg in args}
    if "auth" not in chosen:
        args += [f"--{name}={method}" for name, method in INITDB_AUTH if name not in chosen]
    return args


def default_auth_problem(instance: Instance) -> str | None:
    """Why the agent could not log in to the cluster initdb makes, or None.

    Only when no pg_hba lines are configured and the initdb options leave the
    authentication to haagent's defaults: over TCP the superuser needs a password
    (scram-sha-256); over the unix socket (`use_unix_socket`) it must have the name of
    the OS user running haagent (peer).
    """
    options = tool_options(instance.bootstrap_settings.initdb, "bootstrap.initdb", INITDB_RESERVED)
    if instance.hba_lines() or any(option.startswith("--auth") for option in options):
        return None
    superuser = instance.superuser
    if instance.settings.use_unix_socket:
        me = owner_name(os.geteuid())
        if superuser.username == me:
            return None
        how = f"the unix socket needs the superuser to be named {me} (peer authentication)"
    elif superuser.password:
        return None
    else:
        how = "TCP connections need the superuser's password (scram-sha-256)"
    return (
        "cannot bootstrap: no pg_hba lines are configured, so initdb's authentication is "
        f"haagent's default (local: peer, host: scram-sha-256), and {how}. Set "
        "postgresql.authentication.superuser.password, or bootstrap.pg_hba lines"
    )


def prepare_new_data_dir(path: Path) -> bool:
    """Make sure `path` can receive a new cluster; returns whether it existed (empty).

    Refuses a directory that is not empty or not ours, and says why: nothing
    is ever deleted to make room.
    """
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise DataDirectoryError(f"data directory {path} exists and is not a directory")
        check_owned(path, "data directory")
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            what = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'} ({shown})"
            if "PG_VERSION" in entries:
                what = "an existing cluster (it has PG_VERSION)"
            raise DataDirectoryError(
                f"data directory {path} is not empty: it holds {what}. haagent never "
                "overwrites it: move it away (or delete it if you are sure it is not needed), "
                "or point postgresql.data_dir to an empty or missing directory"
            )
        return True
    try:
        path.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        parent = next((p for p in path.parents if p.exists()), path.parent)
        raise DataDirectoryError(
            f"cannot create data directory {path}: {exc.strerror} in {parent} (owned by "
            f"{_owner(parent)}): create it owned by the user running haagent, or choose "
            "another postgresql.data_dir"
        ) from None
    return False


def _owner(path: Path) -> str:
    try:
        return owner_name(path.stat().st_uid)
    except OSError:
        return "?"


async def run_initdb(instance: Instance, timeout: float) -> None:
    initdb = instance.layout.binary("initdb")
    args: list[str | Path] = [
        initdb,
        "-D",
        instance.layout.data_dir,
        "-U",
        instance.superuser.username,
    ]
    args.extend(initdb_args(instance.bootstrap_settings.initdb))
    with tempfile.TemporaryDirectory(prefix="haagent-initdb-") as tmp:
        if instance.superuser.password is not None:
            pwfile = Path(tmp) / "pwfile"
            files.write_atomic(pwfile, instance.superuser.password + "\n", 0o600)
            args.append(f"--pwfile={pwfile}")
        result = await run(args, timeout=timeout, env=tool_env())
    if not result.ok:
        raise BootstrapError(f"initdb failed (bootstrap.initdb options?): {result.tail()}")


async def _ensure_role(conn: Conn, cred: Credentials, attrs: str, timeout: float) -> str:
    exists = await query(
        conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", timeout, "role lookup", (cred.username,)
    )
    verb = "ALTER" if exists else "CREATE"
    statement = sql.SQL("{} ROLE {} WITH {}").format(
        sql.SQL(verb), sql.Identifier(cred.username), sql.SQL(attrs)
    )
    if cred.password is not None:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(cred.password))
    await _execute(conn, statement, timeout, f"{verb} ROLE {cred.username}")
    return f"{verb.lower()}d {cred.username}"


async def _execute(conn: Conn, statement: sql.Composable, timeout: float, what: str) -> None:
    # Rendered client-side so query() sees plain text; the password never reaches a log
    # because the session turned statement logging off first.
    await query(conn, statement.as_string(conn), timeout, what)


async def create_roles(instance: Instance, timeout: float) -> list[str]:
    auth = instance.settings.authentication
    done = []
    async with connection(instance.local_params(), timeout, "creating roles") as conn:
        for setting in ("log_statement = 'none'", "log_min_duration_statement = -1",
                        "log_min_error_statement = 'panic'"):  # fmt: skip
            await query(conn, f"SET {setting}", timeout, "SET")
        if auth.replication.username != auth.superuser.username:
            done.append(await _ensure_role(conn, auth.replication, "LOGIN REPLICATION", timeout))
        rewind = auth.rewind
        if rewind is not None and rewind.username != auth.superuser.username:
            done.append(await _ensure_role(conn, rewind, "LOGIN", timeout))
            who = sql.Identifier(rewind.username)
            for function in REWIND_FUNCTIONS:
                grant = sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), who)
                await _execute(conn, grant, timeout, "GRANT")
            grant = sql.SQL("GRANT pg_checkpoint TO {}").format(who)
            await _execute(conn, grant, timeout, "GRANT pg_checkpoint")
    return done


def post_bootstrap_dsn(host: str, port: int, user: str, options: dict[str, str]) -> str:
    """The connection string the script gets, as Patroni writes it: libpq `key=value` pairs
    (a unix socket directory is a plain `host=/path`), the user's TLS keys, no password."""
    return conninfo({"dbname": "postgres", "user": user, "host": host, "port": port, **options})


async def run_post_bootstrap(instance: Instance, timeout: float) -> str | None:
    script = instance.bootstrap_settings.post_bootstrap
    if not script:
        return None
    params = instance.local_params()
    with libpq.tool_connection(dict(params.libpq)) as connect:
        dsn = post_bootstrap_dsn(params.host, params.port, params.user, connect.options)
        argv = [*shlex.split(script), dsn]
        env = {**instance.tool_env_extra(), **connect.env, "PGOPTIONS": POST_BOOTSTRAP_OPTIONS}
        try:
            result = await run(argv, timeout=timeout, env=tool_env(env))
        except OSError as exc:
            raise BootstrapError(f"bootstrap.post_bootstrap {script!r} cannot run: {exc}") from None
    if not result.ok:
        raise BootstrapError(
            f"bootstrap.post_bootstrap {script!r} exited with {result.returncode}: {result.tail()}"
        )
    return f"post_bootstrap ran in {result.duration:.2f}s"


def custom_argv(method: CustomBootstrap, scope: str, data_dir: Path) -> list[str]:
    """Patroni's call of a custom bootstrap: the command's words, `--scope` and `--datadir`
    (unless `no_params`), then the method's own keys as `--key=value`."""
    params = [] if method.no_params else [f"--scope={scope}", f"--datadir={data_dir}"]
    own = [f"--{k}={v}" for k, v in method.options if k not in ("scope", "datadir")]
    return [*shlex.split(method.command), *params, *own]


async def _wait_out_of_recovery(instance: Instance, deadline: float, what: str) -> None:
    """Until the restored cluster has left recovery.  It refuses connections meanwhile
    (hot_standby is off), so a refused connection means "still recovering" as long as
    the postmaster runs; one that stopped (a recovery target it never reached, a
    restore_command that fails) ends the bootstrap with its log."""
    while True:
        remaining = deadline - time.monotonic()
        if instance.postmaster() is None:
            raise BootstrapError(
                f"{what}: PostgreSQL stopped during the restored cluster's recovery (a "
                "recovery target past the archived WAL, or a restore_command that fails?); "
                f"its log {instance.layout.log_file} says why"
            )
        try:
            rows = await instance.sql("SELECT pg_is_in_recovery()", max(1.0, remaining), what)
        except PostgresError:
            rows = [(True,)]
        if not rows[0][0]:
            return
        if remaining <= 0:
            raise BootstrapError(
                f"{what}: PostgreSQL is still in recovery when the bootstrap's time ran out: "
                "the recovery settings must end it (recovery_target_action: promote)"
            )
        await asyncio.sleep(0.5)


async def run_custom(instance: Instance, method: CustomBootstrap, deadline: float) -> list[str]:
    """The custom method's command, then the restored cluster's recovery; leaves it
    running as a primary in haagent's config."""
    what = f"bootstrap.{method.name}"
    argv = custom_argv(method, instance.scope, instance.layout.data_dir)
    try:
        result = await run(argv, timeout=deadline - time.monotonic(),
                           env=tool_env(instance.tool_env_extra()))  # fmt: skip
    except OSError as exc:
        raise BootstrapError(
            f"{what}.command `{method.command}` cannot run: {exc.strerror or exc}"
        ) from None
    if not result.ok:
        raise BootstrapError(
            f"{what}.command `{method.command}` exited with {result.returncode}: {result.tail()}"
        )
    if not instance.layout.initialized():
        raise BootstrapError(
            f"{what}.command `{method.command}` exited 0 but left no PostgreSQL data "
            f"directory in {instance.layout.data_dir} (no PG_VERSION)"
        )
    steps = [f"{method.name} made the data directory in {result.duration:.1f}s"]
    instance.layout.log_file.unlink(missing_ok=True)  # the backed-up node's log, not ours
    instance.standby, instance.upstream, instance.bootstrap_hba = False, None, True
    instance.keep_recovery_files = method.keep_existing_recovery_conf
    instance.restore_recovery = method.recovery_conf
    recovering = method.keep_existing_recovery_conf or method.recovery_conf is not None
    try:
        await instance.save_config()
        # hot_standby off while recovering: it accepts connections once promoted.
        await instance.start(timeout=max(1.0, deadline - time.monotonic()))
        if recovering:
            await _wait_out_of_recovery(instance, deadline, what)
            steps.append("recovered and promoted")
    finally:
        instance.keep_recovery_files, instance.restore_recovery = False, None
    if recovering:
        # Restarted in haagent's own config: hot_standby back on, the recovery settings
        # (here and in postgresql.auto.conf) gone.
        await instance.stop("fast", timeout=max(1.0, deadline - time.monotonic()))
        await instance.start(timeout=max(1.0, deadline - time.monotonic()))
        steps.append("restarted in haagent's config")
    return steps


async def bootstrap(instance: Instance, timeout: float) -> list[str]:
    """Make a new cluster in the (empty or missing) data directory and leave it running:
    initdb, or the custom method of `bootstrap.method`."""
    deadline = time.monotonic() + timeout
    custom = instance.bootstrap_settings.custom
    for tool in (*(() if custom else ("initdb",)), "postgres", "pg_controldata"):
        instance.layout.binary(tool)
    if custom is None:
        instance.bootstrap_hba = True
        problem = default_auth_problem(instance)
        instance.bootstrap_hba = False
        if problem is not None:
            raise BootstrapError(problem)
    existed = prepare_new_data_dir(instance.layout.data_dir)
    steps: list[str] = []
    try:
        if custom is not None:
            steps.extend(await run_custom(instance, custom, deadline))
        else:
            await run_initdb(instance, deadline - time.monotonic())
            steps.append("initdb")
            instance.standby, instance.upstream, instance.bootstrap_hba = False, None, True
            await instance.save_config()
            await instance.start(timeout=deadline - time.monotonic())
        steps.extend(await create_roles(instance, deadline - time.monotonic()))
        note = await run_post_bootstrap(instance, deadline - time.monotonic())
        if note:
            steps.append(note)
    except BaseException as exc:
        try:
            await instance.stop("immediate", timeout=10)
        finally:
            files.clear_new_directory(instance.layout.data_dir, existed)
        log.warning("bootstrap: removed the half-made cluster in %s", instance.layout.data_dir)
        if isinstance(exc, OSError):
            raise BootstrapError(f"bootstrap failed: {exc}") from exc
        raise
    finally:
        instance.bootstrap_hba = False
    return steps
