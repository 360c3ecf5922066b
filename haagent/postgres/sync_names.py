"""synchronous_standby_names: `FIRST n ("a", "b")` / `ANY n (...)` from chosen standbys.

The one place that writes and reads the value.  Strict synchronous mode with no
standby to name uses a name no member can have (member names never contain a
space), so that PostgreSQL waits for a standby rather than accepting any (`*`
would accept any standby, even one outside the cluster).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

SyncMethod = Literal["FIRST", "ANY"]
STRICT_PLACEHOLDER = "haagent strict: no synchronous standby"


def quote_name(name: str) -> str:
    """A standby's application_name as an identifier; `*` (any standby) stays bare."""
    if name == "*":
        return name
    return '"' + name.replace('"', '""') + '"'


def synchronous_standby_names(
    names: Sequence[str], count: int = 1, method: SyncMethod = "FIRST", *, strict: bool = False
) -> str:
    """The value for `names`: empty (no synchronous replication) when there are none, or
    the placeholder that no standby matches in strict mode.

    `count` is clamped to 1..len(names), as PostgreSQL would wait forever otherwise.
    """
    if method not in ("FIRST", "ANY"):
        raise ValueError(f"synchronous method {method!r}: expected FIRST or ANY")
    unique = list(dict.fromkeys(names))
    if not unique:
        return quote_name(STRICT_PLACEHOLDER) if strict else ""
    count = max(1, min(count, len(unique)))
    return f"{method} {count} ({', '.join(quote_name(n) for n in unique)})"


_SPEC = re.compile(r"^\s*(?:(FIRST|ANY)\s+)?(\d+)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def parse_synchronous_standby_names(value: str) -> tuple[SyncMethod, int, list[str]]:
    """Read a value back: (method, count, names); ("FIRST", 0, []) when empty."""
    if not value.strip():
        return "FIRST", 0, []
    match = _SPEC.match(value)
    if match is None:  # the old form: a plain list means FIRST 1
        method, count, body = "FIRST", 1, value
    else:
        method = "ANY" if (match.group(1) or "").upper() == "ANY" else "FIRST"
        count, body = int(match.group(2)), match.group(3)
    names = [
        item.group(1).replace('""', '"') if item.group(1) is not None else item.group(2)
        for item in re.finditer(r'\s*(?:"((?:[^"]|"")*)"|([^,\s]+))\s*(?:,|$)', body)
    ]
    return ("ANY" if method == "ANY" else "FIRST"), count, names
