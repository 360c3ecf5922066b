"""pg_controldata: what a stopped cluster says about itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from haagent.postgres.errors import PostgresError
from haagent.postgres.layout import Layout
from haagent.postgres.lsn import parse_lsn
from haagent.postgres.proc import run, tool_env

CLEAN_STATES = frozenset({"shut down", "shut down in recovery"})


def parse_controldata(text: str) -> dict[str, str]:
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result


@dataclass(frozen=True)
class ControlData:
    """The fields of pg_control haagent uses."""

    system_identifier: str
    state: str
    checkpoint_lsn: int
    checkpoint_timeline: int
    min_recovery_lsn: int
    min_recovery_timeline: int
    wal_log_hints: bool
    checksums: bool

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> ControlData:
        try:
            return cls(
                system_identifier=fields["Database system identifier"],
                state=fields["Database cluster state"],
                checkpoint_lsn=parse_lsn(fields["Latest checkpoint location"]),
                checkpoint_timeline=int(fields["Latest checkpoint's TimeLineID"]),
                min_recovery_lsn=parse_lsn(fields["Minimum recovery ending location"]),
                min_recovery_timeline=int(fields["Min recovery ending loc's timeline"]),
                wal_log_hints=fields["wal_log_hints setting"] == "on",
                checksums=fields["Data page checksum version"] != "0",
            )
        except (KeyError, ValueError) as exc:
            raise PostgresError(f"unexpected pg_controldata output (missing {exc})") from None

    @property
    def clean(self) -> bool:
        return self.state in CLEAN_STATES

    @property
    def was_primary(self) -> bool:
        """Last ran as a primary (or crashed as one), rather than in recovery."""
        return self.state in ("shut down", "in production", "in crash recovery", "shutting down")

    @property
    def rewindable(self) -> bool:
        return self.wal_log_hints or self.checksums


async def read_controldata(layout: Layout, timeout: float = 10.0) -> ControlData:
    result = await run(
        [layout.binary("pg_controldata"), "-D", layout.data_dir],
        timeout=timeout,
        env=tool_env(english=True),
    )
    if not result.ok:
        raise PostgresError(f"pg_controldata -D {layout.data_dir} failed: {result.tail()}")
    return ControlData.from_fields(parse_controldata(result.stdout))
