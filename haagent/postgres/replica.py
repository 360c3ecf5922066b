"""A new replica: pg_basebackup (WAL streamed) from the leader or a `clonefrom` member.

Sources are tried in order, the whole round `attempts` times.  A copy that
fails, times out or is cancelled is removed at once: the data directory is left
as it was found (missing, or empty), never half-made.  Failures that retrying
cannot fix (a wrong password, no pg_hba entry) end the attempts at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from haagent.postgres import conf, files, libpq
from haagent.postgres.bootstrap import Options, prepare_new_data_dir, tool_options
from haagent.postgres.errors import ReplicaCreationError
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


async def create_replica(
    instance: Instance,
    sources: Sequence[Upstream],
    timeout: float,
    attempts: int = 3,
    retry_delay: float = 5.0,
) -> Upstream:
    """Clone into the (missing or empty) data directory; returns the source used.

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
                (instance.layout.log_file).unlink(missing_ok=True)  # the source's log, not ours
                instance.standby, instance.upstream = True, source
                instance.write_config()
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
