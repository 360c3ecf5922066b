"""bench/suite.py's pure parts: VmRSS parsing, wrk parsing, the JSON shape and the table.

Nothing here starts a cluster (the suite itself does, run by hand).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from haagent_lab.lab.processes import ProcessError

REPO = Path(__file__).resolve().parents[3]

PROC_STATUS = """\
Name:\tpython3
Umask:\t0077
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
VmPeak:\t  412340 kB
VmSize:\t  398120 kB
VmHWM:\t   61200 kB
VmRSS:\t   58212 kB
RssAnon:\t   40100 kB
Threads:\t4
"""

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.11:41234/primary
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.12us  120.50us   5.10ms   90.12%
    Req/Sec    25.41k     1.20k   27.00k    70.00%
  Latency Distribution
     50%  290.00us
     75%  330.00us
     90%  400.00us
     99%    1.21ms
  252841 requests in 10.00s, 40.03MB read
Requests/sec:  25283.77
Transfer/sec:      4.00MB
"""


@pytest.fixture(scope="module")
def suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_suite", REPO / "bench" / "suite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_vmrss_is_read_from_proc_status_text(suite: ModuleType) -> None:
    assert suite.parse_vmrss_kib(PROC_STATUS) == 58212
    zombie = "\n".join(line for line in PROC_STATUS.splitlines() if "VmRSS" not in line)
    assert suite.parse_vmrss_kib(zombie) is None
    assert suite.parse_vmrss_kib("") is None


def test_rss_summary_is_the_largest_sample_per_node_in_mib(suite: ModuleType) -> None:
    summary = suite.rss_summary({"node1": [51200, 58212], "node2": [40960], "node3": []})
    assert summary == {"max_mib": 56.8, "nodes_mib": {"node1": 56.8, "node2": 40.0}}
    assert suite.rss_summary({}) == {"max_mib": None, "nodes_mib": {}}


def test_wrk_output_gives_requests_per_second_and_p99_in_ms(suite: ModuleType) -> None:
    from bench.api_real_node import parse_wrk

    assert parse_wrk(WRK_OUTPUT) == (25283.77, 1.21)
    assert parse_wrk(WRK_OUTPUT.replace("1.21ms", "850.00us"))[1] == pytest.approx(0.85)
    assert parse_wrk("unable to connect") == (None, None)


def report(suite: ModuleType) -> dict[str, Any]:
    from bench.api_real_node import ApiResult, parse_wrk

    rps, p99 = parse_wrk(WRK_OUTPUT)
    rounds = {
        "switchover": [
            {"write_downtime": 0.14, "time_to_healthy": 6.2, "lost": 0, "acknowledged": 300},
            {"write_downtime": 0.12, "time_to_healthy": 5.8, "lost": 0, "acknowledged": 280},
        ],
        "node_loss": [
            {"write_downtime": 10.4, "time_to_healthy": 25.0, "lost": 1, "acknowledged": 900},
        ],
    }
    faults = {name: suite.fault_summary(rows) for name, rows in rounds.items()}
    made: dict[str, Any] = suite.make_report(
        sync=False, rounds=2, wrk_duration=10, bootstrap=23.456,
        api=ApiResult(rps, p99, 5.0, 3.21, WRK_OUTPUT), faults=faults,
        acknowledged=1480, lost=1, rss={"node1": [58212], "node2": [40960], "node3": [45000]},
    )  # fmt: skip
    return made


def test_the_json_has_every_figure_and_round_trips(suite: ModuleType) -> None:
    data = json.loads(json.dumps(report(suite)))
    assert set(data) == {"settings", "bootstrap_s", "api", "faults", "writes", "agent_rss"}
    assert data["settings"] == {
        "ttl": 10, "loop_wait": 2, "retry_timeout": 3, "synchronous_mode": False, "rounds": 2,
    }  # fmt: skip
    assert data["bootstrap_s"] == 23.5
    assert data["api"]["requests_per_second"] == 25283.77
    assert data["api"]["p99_ms"] == 1.21
    switchover = data["faults"]["switchover"]
    assert switchover["write_downtime_max_s"] == 0.14
    assert switchover["write_downtime_median_s"] == 0.13
    assert switchover["time_to_healthy_median_s"] == 6.0
    assert (switchover["lost_writes"], switchover["acknowledged_writes"]) == (0, 580)
    assert len(switchover["rounds"]) == 2
    assert data["faults"]["node_loss"]["lost_writes"] == 1
    assert data["writes"] == {"acknowledged": 1480, "lost": 1}
    assert data["agent_rss"]["max_mib"] == 56.8


def test_the_table_shows_the_same_figures(suite: ModuleType) -> None:
    table = suite.format_table(report(suite))
    assert "synchronous_mode=off rounds=2" in table
    assert "| 23.5 s |" in table
    assert "25,284 req/s, p99 1.21 ms" in table
    assert "| agent + guard VmRSS, max | 56.8 MiB |" in table
    assert "node1 56.8 MiB, node2 40.0 MiB, node3 43.9 MiB" in table
    assert "| switchover | 0.14 s | 0.13 s | 6.0 s | 0 of 580 |" in table
    assert "| node loss (agent + postmaster SIGKILL) | 10.40 s | 10.40 s | 25.0 s | 1 of 900 |" in (
        table
    )
    assert "| acknowledged writes lost, all faults | 1 of 1,480 |" in table
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in rows)


def test_without_a_measurement_the_cells_say_n_a(suite: ModuleType) -> None:
    data = report(suite)
    api = {**data["api"], "requests_per_second": None, "p99_ms": None}
    table = suite.format_table({**data, "api": api})
    assert "n/a req/s, p99 n/a" in table


class _LabThatCannotStart:
    """Stands in for LabCluster: start fails as a cluster that never gets healthy does."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes = {"node1": None, "node2": None, "node3": None}
        self.stopped = False

    def start(self, timeout: float) -> None:
        raise ProcessError("timed out after 180s waiting for one primary")

    def stop(self) -> None:
        self.stopped = True


def test_a_cluster_that_cannot_come_up_exits_2_with_a_clear_message_and_is_stopped(
    suite: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab = _LabThatCannotStart(tmp_path)
    monkeypatch.setattr(suite, "new_lab", lambda **_: lab)
    monkeypatch.setattr(suite.shutil, "which", lambda _: "/usr/bin/wrk")
    assert suite.main(["--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "suite: the cluster did not come up: timed out after 180s" in err
    assert f"logs kept in {tmp_path}" in err
    assert lab.stopped
    assert not (tmp_path / "out.json").exists()
