"""Asking the installed PostgreSQL which of the user's parameters it would refuse.

A setting the server does not know (one removed in its version, a typo) or a
value it refuses (`password_encryption = on` on 14+, `max_connections` out of
range) stops the postmaster at start.  Rather than keep a table of every
parameter of every version, haagent lets the server read the parameters
before they are written: `postgres -C` parses a candidate file exactly as a
start would, reports every problem with the parameter's name, and exits.  It
runs against an empty scratch directory, so nothing of the real data
directory is read or touched, and it works while PostgreSQL runs.

What it refuses is then left out, or, for a number out of range, written as
the nearest bound, as Patroni does; each such change is one warning naming
the key path.  When the check itself cannot run, the parameters are written
unchecked (a bad one then shows up in the start's error, as before).
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haagent.postgres.proc import tool_env

log = logging.getLogger("haagent.postgres")
Render = Callable[[Any], str]

MAX_PASSES = 4  # unknown names are reported first, values in a second run
_LINE = re.compile(r"^\S+ \S+ \S+ \[\d+\] (LOG|FATAL|HINT|DETAIL|WARNING|ERROR):\s+(.*)$")
_NAME = re.compile(r'parameter (?:name )?"([^"]+)"')
_AT_LINE = re.compile(r'in file "([^"]+)" line (\d+)')
_RANGE = re.compile(
    r'^(-?[\d.]+(?:e[+-]?\d+)?)\b.* is outside the valid range for parameter "[^"]+" '
    r"\((.+) \.\. (.+)\)$"
)


@dataclass(frozen=True)
class Refusal:
    """One parameter the server refused: why, and what to write instead (None: nothing)."""

    name: str
    reason: str
    replacement: str | int | float | None = None


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _clamped(message: str) -> int | float | None:
    """The bound to write for `N is outside the valid range for parameter "x" (lo .. hi)`."""
    match = _RANGE.match(message)
    if match is None:
        return None
    value, low, high = (_number(g.strip()) for g in match.groups())
    if value is None or low is None or high is None:
        return None
    return low if value < low else high


def parse_refusals(output: str, candidate: Path, lines: Mapping[int, str]) -> dict[str, Refusal]:
    """The parameters refused in the server's output, by name (lower case).

    `lines` maps the candidate file's line numbers to the parameter written there, for
    messages that name a line rather than a parameter (a syntax error).
    """
    refusals: dict[str, Refusal] = {}
    last: str | None = None
    for raw in output.splitlines():
        match = _LINE.match(raw.strip())
        if match is None:
            continue
        level, message = match.groups()
        if level in ("HINT", "DETAIL"):
            if last is not None:
                old = refusals[last]
                refusals[last] = Refusal(old.name, f"{old.reason} ({message})", old.replacement)
            continue
        last = None
        name: str | None = None
        at = _AT_LINE.search(message)
        if at is not None and Path(at.group(1)) == candidate:
            name = lines.get(int(at.group(2)))
        named = _NAME.search(message)
        if name is None and named is not None:
            name = named.group(1)
        if name is None or message.startswith("configuration file"):
            continue
        key = name.lower()
        reason = re.sub(r' in file "[^"]+" line \d+', "", message)
        refusals[key] = Refusal(name, reason, _clamped(message))
        last = key
    return refusals


def _run_check(
    postgres: Path, wanted: Mapping[str, Any], render: Render, timeout: float
) -> dict[str, Refusal] | None:
    """The server's refusals on reading `wanted` (empty: none); None: the check cannot run."""
    names = sorted(wanted)
    lines = {i + 1: name for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="haagent-paramcheck-") as tmp:
        scratch = Path(tmp) / "data"
        scratch.mkdir(mode=0o700)
        conf = Path(tmp) / "candidate.conf"
        conf.write_text("".join(f"{name} = {render(wanted[name])}\n" for name in names))
        argv = [str(postgres), "-D", str(scratch), f"--config-file={conf}"]
        argv += ["-c", "lc_messages=C", "-C", "server_version_num"]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=tool_env(english=True),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("cannot check the PostgreSQL parameters with %s: %s", postgres, exc)
            return None
        if result.returncode == 0:
            return {}
        refusals = parse_refusals(result.stderr, conf, lines)
    if not refusals:
        log.warning(
            "cannot check the PostgreSQL parameters: %s exited with %d:\n%s",
            postgres, result.returncode, result.stderr.strip()[-2000:],
        )  # fmt: skip
        return None
    return refusals


def check_parameters(
    postgres: Path, parameters: Mapping[str, Any], render: Render, timeout: float = 10.0
) -> dict[str, Refusal] | None:
    """What to change among `parameters` so that the server of `postgres` accepts them all.

    `render(value)` writes a value as postgresql.conf wants it.  Returns the refusals by
    the parameter's name as given (empty: all accepted), or None when the check could
    not be made.
    """
    wanted = dict(parameters)
    refused: dict[str, Refusal] = {}
    for _ in range(MAX_PASSES):
        found = _run_check(postgres, wanted, render, timeout)
        if found is None:
            return None
        by_key = {name.lower(): name for name in wanted}
        new = {by_key[key]: r for key, r in found.items() if key in by_key}
        if not new:
            if found:
                log.warning(
                    "PostgreSQL refuses settings haagent does not write itself: %s",
                    "; ".join(r.reason for r in found.values()),
                )
            return refused
        for name, refusal in new.items():
            reason = refusal.reason
            if name in refused:  # the bound written instead is refused too (a check hook)
                reason = f"{refused[name].reason}, and the bound: {reason}"
            refused[name] = Refusal(name, reason, refusal.replacement)
            if refusal.replacement is None:
                del wanted[name]
            else:
                wanted[name] = refusal.replacement
    return refused
