"""`pre_promote` and `before_stop`: the user's scripts a promotion or a stop waits for.

Unlike callbacks, these run inside the action they belong to, bounded by
`postgresql.callback_timeout` (the lease keeper renews the leader key meanwhile, so a
slow script delays the action, never the renewals):

- `pre_promote` runs after the leader key is taken and the node fenced, before
  `Promote`; a non-zero exit, a timeout or a script that cannot run cancels the
  promotion (the next decision gives the key back, `PRE_PROMOTE_FAILED`), as in Patroni;
- `before_stop` runs before PostgreSQL is stopped on purpose (a switchover, a shutdown,
  a restart, a reinitialize); its exit status is logged and the stop goes on, as in
  Patroni.  A demotion that must stop writes at once (the key is lost, etcd is gone, or
  another node leads) does not wait for it: it is skipped, and logged.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Awaitable, Callable

from haagent.postgres.proc import Completed, run, tool_env

log = logging.getLogger("haagent.engine")

Runner = Callable[..., Awaitable[Completed]]


async def run_hook(key: str, command: str, timeout: float, runner: Runner = run) -> str | None:
    """Run `command` (setting `key`, such as `postgresql.pre_promote`) to its end, at most
    `timeout` seconds; None when it exited 0, otherwise what went wrong.  One log line."""
    try:
        argv = shlex.split(command)
        result = await runner(argv, timeout=timeout, env=tool_env())
    except TimeoutError:
        problem = f"did not finish within {timeout:g}s (postgresql.callback_timeout) and was killed"
        log.warning("%s `%s` %s", key, command, problem)
        return problem
    except (OSError, ValueError) as e:
        problem = f"cannot run: {getattr(e, 'strerror', None) or e}"
        log.error("%s `%s`: %s", key, command, problem)
        return problem
    tail = " | ".join(line for line in result.tail(4).splitlines() if line.strip())
    shown = f"; output: {tail}" if tail else ""
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, "%s `%s`: exit %d in %.2fs%s", key, command, result.returncode,
            result.duration, shown)  # fmt: skip
    return None if result.ok else f"exited with {result.returncode}{shown}"
