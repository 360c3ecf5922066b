"""End to end on three real nodes: the user's callbacks and pre_promote (issue 16).

One lab serves every check in sequence (CI time): each node's callbacks are a real
script that appends `EVENT ROLE SCOPE` (Patroni's arguments) to a file of its own, its
pre_promote a real script that fails while a flag file exists, its before_stop one
that notes it ran.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from haagent_lab.lab.cluster import LabCluster, LabNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD = """#!/bin/sh
# record.sh LOG EVENT ROLE SCOPE: one line per call; slow while a file `slow` exists
log="$1"; shift
echo "$*" >> "$log"
if [ -e "$(dirname "$log")/slow" ]; then sleep 6; fi
"""
GATE = """#!/bin/sh
# gate.sh FLAG LOG: pre_promote that fails while FLAG exists
echo "pre_promote" >> "$2"
if [ -e "$1" ]; then echo "refused by $1"; exit 3; fi
exit 0
"""
NOTE = """#!/bin/sh
# note.sh LOG WORD: before_stop
echo "$2" >> "$1"
"""
CALLBACKS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def request(node: LabNode, method: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    req = urllib.request.Request(
        node.api_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def calls(lab: LabCluster, name: str) -> list[str]:
    path = lab.base / f"{name}.callbacks"
    return path.read_text().splitlines() if path.exists() else []


def wait_calls(lab: LabCluster, name: str, expected: list[str], timeout: float = 30) -> None:
    """Wait until node `name`'s callbacks since the mark end with `expected`, in order."""
    lab.wait_for(
        lambda: calls(lab, name)[-len(expected) :] == expected,
        f"{name}'s callbacks to end with {expected} (got {calls(lab, name)})",
        timeout,
    )


def log_lines(node: LabNode) -> list[str]:
    return (node.base / "haagent.log").read_text().splitlines()


def index_of(lines: list[str], text: str) -> int:
    """The last line holding `text` (a callback line is logged when the callback ends)."""
    found = [i for i, line in enumerate(lines) if text in line]
    assert found, f"no line with {text!r}"
    return found[-1]


def finished(node: LabNode, event: str) -> bool:
    return any(event in line and ": exit " in line for line in log_lines(node))


def test_callbacks_and_pre_promote_on_three_nodes(
    lab_factory: Callable[..., LabCluster], workdir: Path
) -> None:
    scripts = workdir / "scripts"
    scripts.mkdir(exist_ok=True)
    os.chmod(scripts, 0o755)
    record = _script(scripts / "record.sh", RECORD)
    gate = _script(scripts / "gate.sh", GATE)
    note = _script(scripts / "note.sh", NOTE)
    base = workdir / "lab0"

    def configure(node: LabNode, config: dict[str, Any]) -> None:
        log = base / f"{node.name}.callbacks"
        pg = config["postgresql"]
        pg["callbacks"] = {event: f"{record} {log}" for event in CALLBACKS}
        pg["pre_promote"] = f"{gate} {base / (node.name + '.refuse')} {log}"
        pg["before_stop"] = f"{note} {log} before_stop"
        pg["callback_timeout"] = 20

    lab = lab_factory(configure=configure)
    lab.start(timeout=120)
    scope = lab.scope
    first = lab.leader()
    assert first is not None
    replicas = sorted(n for n in lab.nodes if n != first)

    # Bootstrap: the new cluster's primary and each replica announce their start.
    wait_calls(lab, first, [f"on_start primary {scope}"])
    for name in replicas:
        wait_calls(lab, name, [f"on_start replica {scope}"])

    # A switchover, every callback taking 6 s: the old primary stops as "demoted", then
    # follows; the candidate's pre_promote runs (and passes), then its role changes.
    (base / "slow").write_text("")
    candidate = replicas[0]
    code, text = request(
        lab.nodes[first], "POST", "/switchover", {"leader": first, "candidate": candidate}
    )
    assert code == 200, text
    lab.wait_healthy(60)
    assert lab.leader() == candidate
    wait_calls(lab, candidate, ["pre_promote", f"on_role_change primary {scope}"])
    wait_calls(lab, first, [f"on_stop demoted {scope}", f"on_role_change replica {scope}"])
    assert calls(lab, first)[-3] == "before_stop"  # run before the stop, bounded
    # The slow callbacks held up neither the renewals nor the old primary's restart.
    (base / "slow").unlink()
    lab.wait_for(
        lambda: finished(lab.nodes[first], f"on_role_change replica {scope}"),
        f"{first}'s on_role_change to finish",
        30,
    )
    new = log_lines(lab.nodes[candidate])
    promoted = index_of(new, "promote: promoted")
    called = index_of(new, f"on_role_change primary {scope} (leader_race): exit 0")
    assert any("leader_renewed" in line for line in new[promoted:called]), new[promoted:]
    old = log_lines(lab.nodes[first])
    restarted = index_of(old, "started as a standby")
    stopped = index_of(old, f"on_stop demoted {scope} (switchover_demoting): exit 0")
    assert restarted < stopped, old
    assert "waited" in old[index_of(old, f"on_role_change replica {scope}")]

    # pre_promote exiting non-zero: the named candidate takes the key, its script refuses,
    # it gives the key back and another member takes over.
    refusing = first
    (base / f"{refusing}.refuse").write_text("")
    marks = {name: len(log_lines(node)) for name, node in lab.nodes.items()}
    (base / "slow").write_text("")  # the failover's callbacks take 6 s each too
    code, text = request(
        lab.nodes[candidate], "POST", "/switchover", {"leader": candidate, "candidate": refusing}
    )
    lab.wait_healthy(90)
    leader = lab.leader()
    assert leader is not None and leader != refusing, (leader, text)
    # The node that took the free key over (a failover: no candidate left) was promoted
    # with its pre_promote and on_role_change primary.
    wait_calls(lab, leader, ["pre_promote", f"on_role_change primary {scope}"])
    # Its slow callbacks held up neither its promotion nor its renewals.
    (base / "slow").unlink()

    def since_failover() -> list[str]:
        return log_lines(lab.nodes[leader])[marks[leader] :]

    role_change = f"on_role_change primary {scope} ("
    lab.wait_for(
        lambda: any(role_change in line and ": exit " in line for line in since_failover()),
        f"{leader}'s on_role_change to finish",
        30,
    )
    new = since_failover()
    promoted = index_of(new, "promote: promoted")
    assert any("leader_renewed" in line for line in new[promoted : index_of(new, role_change)])
    assert calls(lab, refusing)[-1] != f"on_role_change primary {scope}"
    assert "pre_promote" in calls(lab, refusing)
    log_text = (lab.nodes[refusing].base / "haagent.log").read_text()
    assert "pre_promote_failed" in log_text
    assert "refused by" in log_text  # the script's output is in the agent's log
    (base / f"{refusing}.refuse").unlink()

    # A restart requested over the REST API, and a reload of a changed parameter.
    replica = next(n for n in lab.nodes if n != leader)
    code, text = request(lab.nodes[replica], "POST", "/restart", {})
    assert code == 200, text
    wait_calls(lab, replica, [f"on_restart replica {scope}"])
    code, text = request(
        lab.nodes[leader], "PATCH", "/config", {"postgresql": {"parameters": {"work_mem": "8MB"}}}
    )
    assert code == 200, text
    wait_calls(lab, leader, [f"on_reload primary {scope}"])
    wait_calls(lab, replica, [f"on_reload replica {scope}"])

    # A node stopped with its agent: on_stop with its role, run before the agent leaves.
    lab.stop_agent(replica)
    assert calls(lab, replica)[-2:] == ["before_stop", f"on_stop replica {scope}"]
    # Every callback line logged with the reason code of the decision that fired it.
    log_text = (lab.nodes[leader].base / "haagent.log").read_text()
    assert "callback " in log_text and "on_role_change primary" in log_text
