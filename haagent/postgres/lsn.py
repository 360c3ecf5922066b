"""WAL positions (LSNs): PostgreSQL's `16/B374D848` text form to and from integers."""

from __future__ import annotations

import re

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    """`"16/B374D848"` -> 0x16B374D848; raises ValueError on anything else."""
    match = _LSN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a WAL position (expected hex/hex, like 0/1A2B3C)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def parse_lsn_or_none(text: str | None) -> int | None:
    return None if text is None else parse_lsn(text)


def format_lsn(lsn: int) -> str:
    """0x16B374D848 -> `"16/B374D848"`, as PostgreSQL prints it."""
    if not 0 <= lsn < 1 << 64:
        raise ValueError(f"{lsn} is not a WAL position (0 <= lsn < 2**64)")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
