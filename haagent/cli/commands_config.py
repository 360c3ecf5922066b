"""`haactl show-config` and `haactl edit-config`: the cluster-wide config in etcd.

edit-config builds the new config from `--replace FILE`, `--apply FILE` (a merge where
null deletes), `-s key.path=value` and `-p pg_param=value` (values are YAML: `16MB`,
`200`, `true`, `null` to delete), or opens `$EDITOR` on the YAML when none of those is
given.  The new config is checked with the agents' own parser, the difference shown,
confirmed (unless `--force`), and written with compare-and-swap on the key's revision,
so a concurrent change is never lost.
"""

from __future__ import annotations

import copy
import difflib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from haagent.cli.common import confirm
from haagent.cli.context import Ctl
from haagent.cli.errors import ActionFailed, BadInput
from haagent.cli.store import Snapshot, open_store
from haagent.config import ConfigError, parse_dynamic_config
from haagent.config.dynamic import merge_patch
from haagent.dcs import codec

PARAMETERS = ("postgresql", "parameters")


def to_yaml(config: Mapping[str, Any]) -> str:
    if not config:
        return ""
    return yaml.safe_dump(dict(config), default_flow_style=False, sort_keys=True)


def key_path(dotted: str) -> list[str]:
    """`a.b.c` -> [a, b, c]; a PostgreSQL parameter keeps its dots
    (`postgresql.parameters.pg_stat_statements.track`)."""
    parts = dotted.split(".")
    if tuple(parts[:2]) == PARAMETERS and len(parts) > 2:
        return [*PARAMETERS, ".".join(parts[2:])]
    return parts


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise BadInput(f"{option} {text!r}: expected key=value, e.g. {option} ttl=40")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise BadInput(f"{option} {text!r}: the value is not valid YAML ({e})") from None
    return key, value


def set_path(config: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set (or, for None, delete) `path` in `config`, creating mappings on the way."""
    node = config
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            if value is None:
                return
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: i + 1])
            raise BadInput(f"{where} is {child!r}, not a mapping: cannot set {'.'.join(path)}")
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def apply_assignments(
    config: Mapping[str, Any], sets: Sequence[str], params: Sequence[str]
) -> dict[str, Any]:
    result = copy.deepcopy(dict(config))
    for text in sets:
        key, value = parse_assignment(text, "-s")
        set_path(result, key_path(key), value)
    for text in params:
        key, value = parse_assignment(text, "-p")
        set_path(result, [*PARAMETERS, key], value)
    return result


def read_document(source: str, option: str) -> dict[str, Any]:
    """A YAML mapping from a file, or from stdin for `-`."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as e:
        raise BadInput(f"{option} {source}: cannot read it ({e.strerror})") from None
    return parse_document(text, f"{option} {source}")


def parse_document(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadInput(f"{where}: not valid YAML ({e}); nothing was written") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"{where}: expected a YAML mapping of settings; nothing was written")
    return data


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return list(
        difflib.unified_diff(
            to_yaml(before).splitlines(),
            to_yaml(after).splitlines(),
            "before",
            "after",
            lineterm="",
        )
    )


def validate(config: Mapping[str, Any]) -> list[str]:
    """The warnings the agents would log for `config`; an invalid config is a `BadInput`."""
    warnings: list[str] = []
    try:
        parse_dynamic_config(config, warnings=warnings)
    except ConfigError as e:
        raise BadInput(f"the new config is not valid: {e.message}; nothing was written") from None
    return warnings


def current_config(snapshot: Snapshot) -> dict[str, Any]:
    value = snapshot.json_value(codec.CONFIG)
    return dict(value) if isinstance(value, dict) else {}


async def _show(ctl: Ctl, cluster: str, fmt: str) -> None:
    async with open_store(ctl, cluster) as store:
        snapshot = await store.read()
    if codec.CONFIG not in snapshot.raw:
        raise ActionFailed(
            f"cluster {cluster} has no config key under {store.prefix}; "
            "check the cluster name, or whether it was bootstrapped"
        )
    config = current_config(snapshot)
    text = json.dumps(config, indent=2, sort_keys=True) if fmt == "json" else to_yaml(config)
    click.echo(text.rstrip("\n"))


@click.command(name="show-config")
@click.argument("cluster_name", required=False)
@click.option("-f", "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
@click.pass_obj
def show_config_command(ctl: Ctl, cluster_name: str | None, fmt: str) -> None:
    """Print the cluster-wide config stored in etcd."""
    ctl.run(_show(ctl, ctl.cluster(cluster_name), fmt))


async def _edit(
    ctl: Ctl,
    cluster: str,
    sets: Sequence[str],
    params: Sequence[str],
    apply: str | None,
    replace: str | None,
    quiet: bool,
    force: bool,
) -> None:
    async with open_store(ctl, cluster) as store:
        snapshot = await store.read()
        before = current_config(snapshot)
        if replace is not None:
            after = read_document(replace, "--replace")
        elif apply is not None:
            after = merge_patch(before, read_document(apply, "--apply"))
        else:
            after = copy.deepcopy(before)
        after = apply_assignments(after, sets, params)
        if replace is None and apply is None and not sets and not params:
            edited = click.edit(to_yaml(before), extension=".yaml", require_save=True)
            if edited is None:
                click.echo("Not changed")
                return
            after = parse_document(edited, "the edited config")
        lines = diff(before, after)
        if not lines:
            click.echo("Not changed")
            return
        for warning in validate(after):
            click.echo(f"Warning: {warning}", err=True)
        if not quiet or not force:
            for line in lines:
                color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                click.secho(line, fg=color)
        confirm("Apply these changes?", force)
        value = codec.encode_config(after)
        if not await store.put_if(codec.CONFIG, value, snapshot.revision_of(codec.CONFIG)):
            raise ActionFailed(
                "the config changed in etcd while you were editing it; nothing was written: "
                "run edit-config again to edit the new version"
            )
    click.echo("Configuration changed")


@click.command(name="edit-config", short_help="Change the cluster-wide config in etcd.")
@click.argument("cluster_name", required=False)
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a key.")
@click.option("-p", "--pg", "params", multiple=True, metavar="NAME=VALUE", help="PG parameter.")
@click.option("--apply", metavar="FILE", help="Merge a YAML file ('-': stdin); null deletes.")
@click.option("--replace", metavar="FILE", help="Replace the config with a YAML file.")
@click.option("-q", "--quiet", is_flag=True, help="Do not show the diff (with --force).")
@click.option("--force", is_flag=True, help="Do not ask.")
@click.pass_obj
def edit_config_command(
    ctl: Ctl,
    cluster_name: str | None,
    sets: tuple[str, ...],
    params: tuple[str, ...],
    apply: str | None,
    replace: str | None,
    quiet: bool,
    force: bool,
) -> None:
    """Change the cluster-wide config: $EDITOR, -s key=value, -p param=value or --apply."""
    if apply is not None and replace is not None:
        raise BadInput("--apply and --replace exclude each other; give one of them")
    if "-" in (apply, replace) and not force:
        raise BadInput("reading the config from stdin ('-') needs --force: stdin can't confirm")
    for text in sets:
        parse_assignment(text, "-s")
    for text in params:
        parse_assignment(text, "-p")
    ctl.run(_edit(ctl, ctl.cluster(cluster_name), sets, params, apply, replace, quiet, force))
