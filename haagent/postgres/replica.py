"""A new replica: `postgresql.create_replica_methods` in order, pg_basebackup among them.

`build_replica(instance, methods, sources, ...)` is the one entry point: the methods
in order, from the first source (the leader, a `clonefrom` member, or a standby
cluster's remote primary) or from none (only the `no_leader` methods, which restore a
backup).  A method that fails falls through to the next; the replica is configured as a
standby of the source it was built from (of none yet, for a backup) and left stopped.

pg_basebackup (`basebackup`): sources are tried in order, the whole round `attempts`
times.  A copy that fails, times out or is cancelled is removed at once: the data
directory is left as it was found (missing, or empty), never half-made.  Failures that
retrying cannot fix (a wrong password, no pg_hba entry) end the attempts at once.

Any other method runs its command with Patroni's arguments (`method_argv`).  It never
runs on a data directory that is not empty unless its `keep_data` says so: haagent
never empties one to make room (Patroni does).  When it fails, what it left in a
directory that was empty before is removed (logged), unless `keep_data`.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from haagent.config.model import BASEBACKUP, ReplicaMethod
from haagent.postgres import conf, files, libpq
from haagent.postgres.bootstrap import Options, prepare_new_data_dir, tool_options
from haagent.postgres.errors import DataDirectoryError, ReplicaCreationError
from haagent.postgres.instance import Instance, log
from haagent.postgres.model import Upstream
from haagent.postgres.proc import Completed, run, tool_env

BASEBACKUP_RESERVED = {
    "pgdata", "D", "format", "F", "host", "h", "port", "p", "username", "U", "dbname", "d",
    "no-password", "w", "password", "W", "write-recovery-conf", "R",
}  # fmt: skip
PERMANENT_FAILURES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    'role "',  # role "x" does not exist / is not permitted to log in
    "must be superuser or replication role",
    "could not create directory",
    "Permission denied",
)


def basebackup_args(options: Options) -> list[str]:
    """The user's `postgresql.basebackup` options, with haagent's defaults for the rest."""
    args = tool_options(options, "postgresql.basebackup", BASEBACKUP_RESERVED)
    if not any(a.startswith(("--wal-method", "-X")) for a in args):
        args.append("--wal-method=stream")
    if not any(a.startswith(("--checkpoint", "-c")) for a in args):
        args.append("--checkpoint=fast")
    return args


def _hint(result: Completed, instance: Instance) -> str:
    text = result.tail()
    user = instance.settings.authentication.replication.username
    if "password authentication failed" in text:
        return (
            f": check postgresql.authentication.replication ({user}): its password must be "
            "the one the leader has"
        )
    if "no pg_hba.conf entry" in text:
        return ": the source's pg_hba.conf must allow replication connections from this host"
    return ""


async def _basebackup(instance: Instance, source: Upstream, timeout: float) -> Completed:
    cred = instance.settings.authentication.replication
    with libpq.tool_connection(instance.libpq_options(cred)) as connect:
        dsn = conf.conninfo(
            {
                "host": source.host,
                "port": source.port,
                "user": cred.username,
                "application_name": instance.name,
                **connect.options,
            }
        )
        argv: list[str | Path] = [
            instance.layout.binary("pg_basebackup"),
            "-D",
            instance.layout.data_dir,
            "--no-password",
        ]
        argv += [f"--dbname={dsn}", *basebackup_args(instance.settings.basebackup)]
        env = tool_env({**instance.tool_env_extra(), **connect.env})
        return await run(argv, timeout=timeout, env=env)


async def basebackup(
    instance: Instance,
    sources: Sequence[Upstream],
    timeout: float,
    attempts: int = 3,
    retry_delay: float = 5.0,
) -> Upstream:
    """pg_basebackup into the (missing or empty) data directory; returns the source used.

    The clone is configured as a standby of that source (not started).
    """
    if not sources:
        raise ReplicaCreationError("no member to clone from: no leader and no clonefrom member")
    instance.layout.binary("pg_basebackup")
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        for source in sources:
            instance.write_pgpass(source)
            existed = prepare_new_data_dir(instance.layout.data_dir)
            remaining = deadline - time.monotonic()
            try:
                result = await _basebackup(instance, source, remaining)
            except BaseException as exc:
                files.clear_new_directory(instance.layout.data_dir, existed)
                if isinstance(exc, TimeoutError):
                    raise ReplicaCreationError(
                        f"pg_basebackup from {source} did not finish within {timeout:g}s; "
                        "the partial copy was removed"
                    ) from None
                raise
            if result.ok:
                _configure_standby(instance, source)
                log.debug("pg_basebackup from %s took %.2fs", source, result.duration)
                return source
            files.clear_new_directory(instance.layout.data_dir, existed)
            why = f"pg_basebackup from {source}: {result.tail(4)}{_hint(result, instance)}"
            errors.append(why)
            log.warning("attempt %d/%d: %s", attempt, attempts, why)
            if any(p in result.tail() for p in PERMANENT_FAILURES):
                raise ReplicaCreationError(f"{why}; the partial copy was removed")
        if attempt < attempts:
            await asyncio.sleep(min(retry_delay, max(0.0, deadline - time.monotonic())))
    raise ReplicaCreationError(
        f"cloning failed {attempts} times; the partial copy was removed. Last: {errors[-1]}"
    )


def _configure_standby(instance: Instance, source: Upstream | None) -> None:
    """A data directory just built: a standby of `source` (None: of no one yet), stopped."""
    instance.layout.log_file.unlink(missing_ok=True)  # the source's log, not ours
    instance.standby, instance.upstream = True, source
    instance.write_config()


def source_conninfo(instance: Instance, source: Upstream) -> str:
    """How a replica method reaches the member it copies from, as Patroni passes it: the
    replication user, no password (the pgpass file has it), the user's libpq keys."""
    cred = instance.settings.authentication.replication
    options = {k: v for k, v in instance.libpq_options(cred).items() if k not in libpq.SECRETS}
    params: dict[str, str | int] = {"dbname": "postgres", "user": cred.username}
    params.update(host=source.host, port=source.port, **options)
    return conf.conninfo(params)


def method_argv(method: ReplicaMethod, scope: str, data_dir: Path, connstring: str) -> list[str]:
    """Patroni's call of a replica method: the command's words, then the method's own keys
    as `--key=value` (keep_data, no_leader and no_params included), then `--scope`,
    `--role=replica`, `--datadir` and `--connstring` ("" with no source), which replace a
    key of the same name in place.  `no_params`: the method's own keys only, without
    keep_data, no_leader and no_params."""
    options = dict(method.options)
    if method.no_params:
        for switch in ("keep_data", "no_leader", "no_params"):
            options.pop(switch, None)
    else:
        options.update(scope=scope, role="replica", datadir=str(data_dir), connstring=connstring)
    return [*shlex.split(method.command), *(f"--{k}={v}" for k, v in options.items())]


async def _run_method(
    instance: Instance, method: ReplicaMethod, source: Upstream | None, timeout: float
) -> None:
    """One method other than basebackup, into the data directory (ReplicaCreationError
    when it fails, after removing what it left unless keep_data)."""
    data_dir = instance.layout.data_dir
    if data_dir.is_dir() and any(data_dir.iterdir()):
        if not method.keep_data:
            raise ReplicaCreationError(
                f"{method.name}: not run, the data directory {data_dir} is not empty and "
                f"postgresql.{method.name}.keep_data is not set (haagent never empties it "
                "for a method): move its contents away, or set keep_data if the method "
                "restores over them"
            )
        existed = True
        log.info("%s: runs on the data directory as it is (keep_data)", method.name)
    else:
        existed = prepare_new_data_dir(data_dir)
    connstring = ""
    if source is not None:
        instance.write_pgpass(source)
        connstring = source_conninfo(instance, source)
    argv = method_argv(method, instance.scope, data_dir, connstring)
    started = time.monotonic()
    try:
        result = await run(argv, timeout=timeout, env=tool_env(instance.tool_env_extra()))
    except BaseException as exc:
        _undo(instance, method, existed)
        if isinstance(exc, TimeoutError):
            raise ReplicaCreationError(
                f"{method.name}: `{method.command}` did not finish within {timeout:g}s"
            ) from None
        if isinstance(exc, OSError):
            raise ReplicaCreationError(
                f"{method.name}: `{method.command}` cannot run: {exc.strerror or exc} "
                f"(postgresql.{method.name}.command)"
            ) from None
        raise
    if not result.ok:
        _undo(instance, method, existed)
        raise ReplicaCreationError(
            f"{method.name}: `{method.command}` exited with {result.returncode}: {result.tail(4)}"
        )
    if not instance.layout.initialized():
        _undo(instance, method, existed)
        raise ReplicaCreationError(
            f"{method.name}: `{method.command}` exited 0 but left no PostgreSQL data "
            f"directory in {data_dir} (no PG_VERSION)"
        )
    log.info("%s built the replica in %.2fs", method.name, time.monotonic() - started)


def _undo(instance: Instance, method: ReplicaMethod, existed: bool) -> None:
    """What a failed method left goes, unless keep_data (the directory was empty before)."""
    data_dir = instance.layout.data_dir
    if method.keep_data:
        log.warning("%s failed; its data directory is kept as it is (keep_data)", method.name)
        return
    if data_dir.is_dir() and any(data_dir.iterdir()):
        log.warning("%s failed: removing what it left in %s (empty before)", method.name, data_dir)
    files.clear_new_directory(data_dir, existed)


async def build_replica(
    instance: Instance,
    methods: Sequence[ReplicaMethod],
    sources: Sequence[Upstream],
    timeout: float,
    attempts: int = 3,
    retry_delay: float = 5.0,
    *,
    key: str = "postgresql.create_replica_methods",
) -> Upstream | None:
    """Build the data directory with `methods` (listed at `key`) in order, from the first of
    `sources` (none: only the `no_leader` methods); configured as a standby of the source
    used (None: of no one yet) and left stopped.  ReplicaCreationError says why every
    method failed."""
    deadline = time.monotonic() + timeout
    usable = [m for m in methods if sources or (m.no_leader and not m.is_basebackup)]
    if not usable:
        raise ReplicaCreationError(
            "no server to copy from (no running leader or clonefrom member, or a "
            "standby_cluster without host), and no create_replica_methods method "
            f"with no_leader to restore a backup ({key}: name a method whose "
            "section postgresql.NAME restores one and sets no_leader: true)"
        )
    errors: list[str] = []
    for method in usable:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            errors.append(f"{method.name}: not tried, the {timeout:g}s for building ran out")
            break
        try:
            if method.name == BASEBACKUP:
                return await basebackup(instance, sources, remaining, attempts, retry_delay)
            source = sources[0] if sources else None
            await _run_method(instance, method, source, remaining)
        except (ReplicaCreationError, DataDirectoryError) as exc:
            errors.append(str(exc))
            following = "; trying the next method" if method is not usable[-1] else ""
            log.warning("replica method %s failed: %s%s", method.name, exc, following)
            continue
        _configure_standby(instance, source)
        return source
    raise ReplicaCreationError("every replica method failed: " + "; ".join(errors))
