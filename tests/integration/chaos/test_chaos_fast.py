"""The failure suite's fast subset on real etcd, PostgreSQL and HAProxy (CI).

The full set runs with `dev/chaos` (python -m haagent_lab.chaos); see README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from haagent_lab.chaos.runner import run_scenario
from haagent_lab.chaos.scenarios import FAST, SCENARIOS
from haagent_lab.lab.netfault import unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("name", FAST)
def test_fast_scenario_keeps_the_invariants(name: str, workdir: Path) -> None:
    scenario = SCENARIOS[name]
    if scenario.network:
        reason = unavailable_reason()
        assert reason is None, f"network faults unavailable: {reason}"
    result = run_scenario(scenario, workdir / "chaos", user=None)
    details = "\n".join([*result.failures, *result.notes])
    assert result.passed, f"{name} failed:\n{details}"
    assert result.samples > 0 and result.acknowledged > 0
    assert result.split_brain_samples == 0
    assert result.time_to_health is not None
