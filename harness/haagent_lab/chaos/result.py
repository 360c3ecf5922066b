"""A scenario's figures and verdict, as a table row and as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    scenario: str
    title: str
    write_downtime: float  # longest gap between acknowledged writes from the fault on, s
    read_downtime: float  # longest gap between reads through HAProxy's read port, s
    acknowledged: int
    lost: int | None  # acknowledged writes missing at the end (None: could not check)
    split_brain_samples: int  # samples with more than one node accepting writes
    samples: int
    time_to_health: float | None  # from the end of the fault to full health, s
    leader_before: str
    leader_after: str | None
    failures: tuple[str, ...]
    notes: tuple[str, ...]
    duration: float
    # The client connected straight to the old primary: its acknowledged and missing writes.
    direct_acknowledged: int = 0
    direct_lost: int | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["failures"] = list(self.failures)
        data["notes"] = list(self.notes)
        return data


COLUMNS = (
    ("scenario", 44),
    ("write down s", 12),
    ("read down s", 11),
    ("lost/acked", 11),
    ("direct lost/acked", 17),
    ("split brain", 11),
    ("to health s", 11),
    ("leader", 15),
    ("verdict", 7),
)


def _cells(r: Result) -> list[str]:
    lost = "?" if r.lost is None else str(r.lost)
    direct = "?" if r.direct_lost is None else str(r.direct_lost)
    health = "-" if r.time_to_health is None else f"{r.time_to_health:.1f}"
    leader = f"{r.leader_before}->{r.leader_after or '?'}"
    return [
        r.scenario,
        f"{r.write_downtime:.2f}",
        f"{r.read_downtime:.2f}",
        f"{lost}/{r.acknowledged}",
        f"{direct}/{r.direct_acknowledged}",
        f"{r.split_brain_samples}/{r.samples}",
        health,
        leader,
        "PASS" if r.passed else "FAIL",
    ]


def table(results: Sequence[Result]) -> str:
    """A plain-text table, one row per scenario, then every failure and note."""
    lines = [" ".join(name.ljust(width) for name, width in COLUMNS).rstrip()]
    lines.append(" ".join("-" * width for _, width in COLUMNS))
    for r in results:
        pairs = zip(_cells(r), COLUMNS, strict=True)
        lines.append(" ".join(c.ljust(w) for c, (_, w) in pairs).rstrip())
    for r in results:
        for failure in r.failures:
            lines.append(f"FAIL {r.scenario}: {failure}")
    return "\n".join(lines)


def markdown(results: Sequence[Result]) -> str:
    """The same table in Markdown (for the README and closing notes)."""
    head = [name for name, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in results]
    return "\n".join(lines)


def to_json(results: Sequence[Result]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2)
