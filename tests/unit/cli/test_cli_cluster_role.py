"""`haactl demote-cluster` / `promote-cluster`: patronictl's checks and prompts (their
effect on real clusters: tests/integration/e2e/test_e2e_standby_cluster.py)."""

from __future__ import annotations

from haactl_memory import Cli


def test_demote_cluster_needs_a_remote(cli: Cli) -> None:
    result = cli("demote-cluster", "--force")
    assert result.exit_code == 2
    assert "at least --host, --port or --restore-command" in result.output


def test_promoting_a_primary_cluster_is_refused(cli: Cli) -> None:
    result = cli("promote-cluster", "--force")
    assert result.exit_code == 1
    assert "already in the required state (primary)" in result.output


def test_demote_cluster_shows_the_cluster_and_asks(cli: Cli) -> None:
    result = cli("demote-cluster", "--host", "10.0.0.9", "--port", "5433", input="n\n")
    assert result.exit_code == 1
    assert "Current cluster topology" in result.output
    assert "Are you sure you want to demote stampede cluster?" in result.output
    assert "Aborted" in result.output


def test_demote_cluster_fails_clearly_when_the_leader_api_is_down(cli: Cli) -> None:
    result = cli("demote-cluster", "--host", "10.0.0.9", "--force")
    assert result.exit_code == 1
    assert "failed to demote stampede cluster" in result.output
