"""The failure suite's pure parts: gaps, the result table and JSON, the scenario list."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import cast

import pytest

from haagent_lab.chaos.observe import Sample, longest_gap
from haagent_lab.chaos.result import Result, markdown, table, to_json
from haagent_lab.chaos.runner import check_expectations
from haagent_lab.chaos.scenario import FAST_TIMINGS, Context, Expect, Scenario
from haagent_lab.chaos.scenarios import FAST, SCENARIOS
from haagent_lab.lab.cluster import LabCluster
from haagent_lab.lab.netfault import group_argv, node_group

REPO = Path(__file__).resolve().parents[3]


def result(**kw: object) -> Result:
    fields: dict[str, object] = dict(
        scenario="s", title="t", write_downtime=1.234, read_downtime=0.5, acknowledged=100,
        lost=0, split_brain_samples=0, samples=50, time_to_health=3.21, leader_before="node1",
        leader_after="node2", failures=(), notes=("n",), duration=60.0,
    )  # fmt: skip
    fields.update(kw)
    return Result(**fields)  # type: ignore[arg-type]


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    assert longest_gap([1.0, 2.0, 2.5], 0.0, 3.0) == pytest.approx(1.0)
    assert longest_gap([], 0.0, 3.0) == pytest.approx(3.0)
    assert longest_gap([0.1, 5.0], 1.0, 2.0) == pytest.approx(1.0)  # nothing inside
    assert longest_gap([1.0, 1.1, 4.0, 4.1], 1.0, 4.1) == pytest.approx(2.9)


def test_table_shows_figures_and_failures() -> None:
    text = table([result(), result(scenario="bad", failures=("two writable",), lost=None)])
    assert "1.23" in text and "0/100" in text and "node1->node2" in text and "PASS" in text
    assert "?/100" in text and "FAIL bad: two writable" in text
    assert markdown([result()]).startswith("| scenario |")


def test_json_carries_the_verdict() -> None:
    data = json.loads(to_json([result(), result(failures=("x",))]))
    assert [d["passed"] for d in data] == [True, False]
    assert data[0]["write_downtime"] == 1.234 and data[1]["failures"] == ["x"]


def test_every_issue_scenario_is_there_and_the_fast_subset_is_small() -> None:
    numbers = {s.title.split()[0] for s in SCENARIOS.values()}
    # 1-10: network, power, process, CPU and etcd faults; 11-15: the lease fence's stalls;
    # 16: a standby cluster's leader loss.
    assert numbers == {str(n) for n in range(1, 17)}
    assert 1 <= len(FAST) <= 5 and set(FAST) <= set(SCENARIOS)
    for s in SCENARIOS.values():
        if s.title.startswith("10 "):
            assert s.synchronous
    assert SCENARIOS["cpu-saturation"].timings["ttl"] == 30
    assert SCENARIOS["switchover"].timings == FAST_TIMINGS


def context(marks: dict[str, float]) -> Context:
    return Context(cast(LabCluster, None), None, FAST_TIMINGS, "node1", marks=marks)


def samples(*spec: tuple[float, set[str]]) -> list[Sample]:
    return [Sample(at, frozenset(w), frozenset()) for at, w in spec]


def judge(expect: Expect, spec: list[Sample], leader_after: str | None, log: str = "") -> list[str]:
    scenario = Scenario("x", "x", lambda ctx: None, expect=expect)
    failures: list[str] = []
    ctx = context({"fault": 100.0, "heal": 130.0})
    check_expectations(scenario, ctx, spec, {"node1": log}, leader_after, failures)
    return failures


def test_a_writable_node_long_after_quorum_loss_fails() -> None:
    expect = Expect(no_primary_during_fault=True)
    ok = samples((101.0, {"node1"}), (109.0, {"node1"}), (115.0, set()), (131.0, {"node2"}))
    assert judge(expect, ok, "node2") == []
    bad = samples((101.0, {"node1"}), (112.0, {"node1"}))
    assert "more than ttl" in judge(expect, bad, "node1")[0]


def test_demotion_past_the_lease_and_missing_rewind_fail() -> None:
    expect = Expect(leader_change=True, rewind=True, demote_within_ttl=True)
    late = samples((101.0, {"node1"}), (111.0, {"node1"}), (120.0, {"node2"}))
    failures = judge(expect, late, "node2")
    assert any("past its lease" in f for f in failures)
    assert any("did not come back as a replica" in f for f in failures)
    good = samples((101.0, {"node1"}), (105.0, set()), (112.0, {"node2"}))
    assert judge(expect, good, "node2", log="follow: rewound (diverged), then started") == []
    assert judge(expect, good, "node2", log="follow: now following node2: reloaded") == []


def test_leader_expectations() -> None:
    assert judge(Expect(leader_change=True), [], "node1")
    assert judge(Expect(leader_change=False), [], "node2")
    assert judge(Expect(primary_throughout=True), samples((110.0, set())), "node1")


def test_group_argv_keeps_the_command() -> None:
    argv = group_argv(node_group(2), ["etcd", "--name", "x"])
    assert argv[0].endswith("as-haagent-node2") and argv[-3:] == ["etcd", "--name", "x"]
    assert "--regid=haagent-node2" in argv


@pytest.mark.parametrize(
    "args, message",
    [
        (["isolate", "2=10.0.0.1"], "loopback address"),
        (["isolate", "0=127.0.0.11"], "N in 1-9"),
        (["isolate"], "at least one"),
        (["frobnicate"], "usage"),
    ],
)
def test_netfault_refuses_bad_arguments_before_touching_nftables(
    args: list[str], message: str
) -> None:
    run = subprocess.run(
        ["bash", str(REPO / "dev" / "netfault"), *args], capture_output=True, text=True
    )
    assert run.returncode == 2 and message in run.stderr
