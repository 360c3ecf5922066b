"""Tables for people (`pretty`, patronictl's look) and for scripts (`json`, `yaml`, `tsv`).

    + Cluster: stampede (7300112233445566778) -+---------+----+-----------+
    | Member | Host        | Role    | State     | TL | Lag in MB |
    +--------+-------------+---------+-----------+----+-----------+
    | node1  | 127.0.0.11  | Leader  | running   |  2 |           |

Every format carries the same fields; `json`/`yaml` are lists of objects keyed by the
column names, `tsv` has a header line.  Empty cells are left out of `json`/`yaml`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

FORMATS = ("pretty", "json", "yaml", "tsv")


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str | None = None
    right: frozenset[str] = frozenset()
    footer: Sequence[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [
            {c: v for c, v in zip(self.columns, row, strict=True) if v not in (None, "")}
            for row in self.rows
        ]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "*" if value else ""
    return str(value)


def pretty(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    text_rows = [[cell(v) for v in row] for row in table.rows]
    for row in text_rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    title = f" {table.title} " if table.title else ""
    rule_len = sum(w + 3 for w in widths) + 1
    if title and len(title) + 3 > rule_len:
        widths[-1] += len(title) + 3 - rule_len
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    top = rule[0] + title + rule[1 + len(title) :] if title else rule

    def line(values: Sequence[str], names: Sequence[str]) -> str:
        cells = [
            v.rjust(w) if name in table.right else v.ljust(w)
            for v, w, name in zip(values, widths, names, strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    lines = [top, line(list(table.columns), ["" for _ in table.columns]), rule]
    lines.extend(line(row, list(table.columns)) for row in text_rows)
    lines.append(rule)
    lines.extend(table.footer)
    return "\n".join(lines)


def tsv(table: Table) -> str:
    lines = ["\t".join(table.columns)]
    lines.extend("\t".join(cell(v).replace("\t", " ") for v in row) for row in table.rows)
    return "\n".join(lines)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=None, default=str)


def dump_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True)


def render(table: Table, fmt: str, document: Any = None) -> str:
    """The table in `fmt`; `document` replaces the records for json/yaml when given."""
    if fmt == "pretty":
        return pretty(table)
    if fmt == "tsv":
        return tsv(table)
    value = table.records() if document is None else document
    if fmt == "json":
        return dump_json(value)
    return dump_yaml(value).rstrip("\n")


def format_option(default: str = "pretty") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="Output format.",
    )
