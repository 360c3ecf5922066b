"""PostgreSQL versions: which server the binaries are, and parameters renamed between versions.

A config written for an older (or newer) PostgreSQL must not stop the server.
Two settings changed their name or their values in a way a config written
for another version still uses, and are translated here, as Patroni does:

- `wal_keep_segments` (up to 12) became `wal_keep_size` (13+): a count of
  16 MB segments on one side, a size on the other;
- `wal_level` `hot_standby` (up to 9.5) became `replica` (9.6+).

Anything else the server does not know, or a value it refuses, is found by
asking the server itself before writing the file (`paramcheck.py`).
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WAL_KEEP_SIZE_SINCE = 130000
REPLICA_WAL_LEVEL_SINCE = 90600
SEGMENT_MB = 16  # the usual WAL segment size; the translation assumes it, as Patroni does
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$")
_MB_PER_UNIT = {"B": 1 / (1 << 20), "kB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1 << 20}


def parse_version_output(text: str) -> int | None:
    """`postgres (PostgreSQL) 15.4 (Debian ...)` -> 150004; 9.6.24 -> 90624; None if unknown."""
    match = _VERSION.search(text)
    if match is None:
        return None
    major, second, third = (int(g) if g else 0 for g in match.groups())
    if major >= 10:
        return major * 10000 + second
    return major * 10000 + second * 100 + third


def major_name(version: int) -> str:
    """150004 -> '15'; 90624 -> '9.6'."""
    return (
        str(version // 10000) if version >= 100000 else f"{version // 10000}.{version // 100 % 100}"
    )


def _size_in_mb(value: Any) -> float | None:
    """`wal_keep_size` as PostgreSQL reads it: a bare number is megabytes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _SIZE.match(str(value))
    if match is None:
        return None
    return int(match.group(1)) * _MB_PER_UNIT[match.group(2) or "MB"]


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def for_version(
    parameters: Mapping[str, Any], version: int | None, where: str
) -> tuple[dict[str, Any], list[str]]:
    """`parameters` translated for a server of `version`, and one note per change made.

    `where` names the key path the parameters came from, for the notes.  A value that
    cannot be translated is left as it is (the server check then says what is wrong).
    """
    result = dict(parameters)
    notes: list[str] = []
    if version is None:
        return result, notes
    name = major_name(version)
    if version >= WAL_KEEP_SIZE_SINCE and "wal_keep_segments" in result:
        segments = result.pop("wal_keep_segments")
        if "wal_keep_size" in result:
            notes.append(
                f"{where}.wal_keep_segments: left out, PostgreSQL {name} has wal_keep_size "
                "instead and it is set too"
            )
        elif (count := _whole(segments)) is not None:
            result["wal_keep_size"] = f"{count * SEGMENT_MB}MB"
            notes.append(
                f"{where}.wal_keep_segments = {segments}: written as wal_keep_size = "
                f"'{count * SEGMENT_MB}MB' (PostgreSQL {name} has no wal_keep_segments)"
            )
        else:
            result["wal_keep_segments"] = segments  # not a number: the server check drops it
    elif version < WAL_KEEP_SIZE_SINCE and "wal_keep_size" in result:
        size = result.pop("wal_keep_size")
        if "wal_keep_segments" in result:
            notes.append(
                f"{where}.wal_keep_size: left out, PostgreSQL {name} has wal_keep_segments "
                "instead and it is set too"
            )
        elif (mb := _size_in_mb(size)) is not None:
            result["wal_keep_segments"] = int((mb + SEGMENT_MB / 2) // SEGMENT_MB)
            notes.append(
                f"{where}.wal_keep_size = {size}: written as wal_keep_segments = "
                f"{result['wal_keep_segments']} (PostgreSQL {name} has no wal_keep_size)"
            )
        else:
            result["wal_keep_size"] = size
    level = str(result.get("wal_level", "")).strip().lower()
    renamed = {"hot_standby": "replica"} if version >= REPLICA_WAL_LEVEL_SINCE else {}
    if version < REPLICA_WAL_LEVEL_SINCE:
        renamed = {"replica": "hot_standby"}
    if level in renamed:
        result["wal_level"] = renamed[level]
        notes.append(
            f"{where}.wal_level = {level}: written as {renamed[level]} "
            f"(the name PostgreSQL {name} uses)"
        )
    return result, notes


@functools.cache
def server_version(postgres: Path) -> int | None:
    """PG_VERSION_NUM of the `postgres` binary (`postgres -V`); None when it cannot be run."""
    try:
        result = subprocess.run(
            [str(postgres), "-V"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version_output(result.stdout) if result.returncode == 0 else None
