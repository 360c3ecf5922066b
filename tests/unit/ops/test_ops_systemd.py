"""systemd/haagent.service and systemd/haagent@.service: valid units with the settings HA needs.

`systemd-analyze verify` checks copies whose ExecStart points at an existing
haagent (it rejects a unit whose binary is missing, and /usr/local/bin/haagent
is not installed here); every other line is verified as shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNITS = {
    "haagent.service": "/etc/haagent/haagent.yml",
    "haagent@.service": "/etc/haagent/%i.yml",
}
INSTALLED = "/usr/local/bin/haagent"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd)"
)


def settings(unit: str) -> dict[str, list[str]]:
    """The unit's `Key=value` lines (comments skipped), every value of each key in order."""
    found: dict[str, list[str]] = {}
    for line in (REPO / "systemd" / unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def one(unit: str, key: str) -> str:
    values = settings(unit)[key]
    assert len(values) == 1, f"{unit}: {key} is set {len(values)} times"
    return values[0]


def runnable_haagent() -> str:
    """An existing haagent command: the one installed next to this interpreter."""
    candidate = Path(sys.executable).parent / "haagent"
    return str(candidate) if candidate.exists() else "/bin/true"


def verify(directory: Path, unit: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", str(directory / unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def copy_with_existing_binary(tmp_path: Path, unit: str) -> Path:
    text = (REPO / "systemd" / unit).read_text()
    assert f"ExecStart={INSTALLED} " in text
    (tmp_path / unit).write_text(
        text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={runnable_haagent()} ")
    )
    return tmp_path


def problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Output lines about our units (a host's own broken units are not our business)."""
    return [line for line in (result.stdout + result.stderr).splitlines() if "haagent" in line]


@needs_analyze
@pytest.mark.parametrize(
    "unit", ["haagent.service", "haagent@.service", "haagent@stampede.service"]
)
def test_systemd_analyze_verify_is_clean(tmp_path: Path, unit: str) -> None:
    template = "haagent@.service" if "@" in unit else unit
    copy_with_existing_binary(tmp_path, template)
    result = verify(tmp_path, unit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert problems(result) == []


@needs_analyze
def test_verify_would_report_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a key is reported."""
    copy_with_existing_binary(tmp_path, "haagent.service")
    path = tmp_path / "haagent.service"
    path.write_text(path.read_text().replace("KillMode=process", "KilMode=process"))
    assert any("KilMode" in line for line in problems(verify(tmp_path, "haagent.service")))


@needs_analyze
def test_verify_rejects_the_shipped_path_when_haagent_is_not_there(tmp_path: Path) -> None:
    if Path(INSTALLED).exists():
        pytest.skip(f"{INSTALLED} is installed on this host")
    shutil.copy(REPO / "systemd" / "haagent.service", tmp_path)
    result = verify(tmp_path, "haagent.service")
    assert result.returncode != 0
    assert INSTALLED in result.stdout + result.stderr


@pytest.mark.parametrize(("unit", "config"), UNITS.items())
def test_the_unit_runs_the_agent_as_postgres_under_notify(unit: str, config: str) -> None:
    assert one(unit, "Type") == "notify"
    assert one(unit, "User") == "postgres"
    assert one(unit, "Group") == "postgres"
    assert one(unit, "ExecStart") == f"{INSTALLED} {config}"
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "RestartPreventExitStatus") == "2"  # haagent's exit status for a bad config
    assert one(unit, "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_signals_the_agent_never_postgresql(unit: str) -> None:
    assert one(unit, "KillMode") == "process"
    assert one(unit, "KillSignal") == "SIGTERM"
    # The agent's clean handover takes up to max(30 s, ttl), plus closing.
    assert int(one(unit, "TimeoutStopSec")) >= 60
    # The first cycle of a new replica is its base backup: no start timeout.
    assert one(unit, "TimeoutStartSec") == "infinity"


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_keeps_the_watchdog_and_pgpass_reachable(unit: str) -> None:
    found = settings(unit)
    assert one(unit, "NoNewPrivileges") == "yes"
    assert one(unit, "ProtectSystem") in ("full", "strict")
    assert one(unit, "ProtectHome") == "yes"
    assert one(unit, "CapabilityBoundingSet") == ""
    assert one(unit, "UMask") == "0077"
    # /dev/watchdog: the closed device policy lets it through; PrivateDevices would hide it.
    assert "PrivateDevices" not in found
    assert one(unit, "DevicePolicy") == "closed"
    assert "/dev/watchdog rw" in found["DeviceAllow"]
    assert "char-watchdog rw" in found["DeviceAllow"]  # /dev/watchdog0, ...
    # PostgreSQL's JIT needs writable executable memory; its shared memory outlives the agent.
    assert "MemoryDenyWriteExecute" not in found and "RemoveIPC" not in found
    assert one(unit, "SystemCallFilter") == "@system-service"
    # /tmp/pgpass0 (Patroni's default) is read by PostgreSQL after the agent restarts.
    assert one(unit, "PrivateTmp") == "no"
    assert int(one(unit, "LimitNOFILE")) >= 65536


def exposure(path: Path) -> float | None:
    """`systemd-analyze security --offline=true`'s overall score; None when unsupported."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    return float(match.group(1)) if match else None


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_security_scores_under_4(tmp_path: Path, unit: str) -> None:
    path = tmp_path / unit
    shutil.copy(REPO / "systemd" / unit, path)
    score = exposure(path)
    if score is None:
        pytest.skip("this systemd-analyze cannot score a unit file offline (systemd >= 250 can)")
    print(f"{unit}: exposure {score}")
    assert score < 4.0
    # The check can fail: the unit without its hardening scores far worse.
    lines = path.read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith(("Capability", "SystemCall", "Protect"))]
    path.write_text("\n".join(kept) + "\n")
    weaker = exposure(path)
    assert weaker is not None and weaker > 4.0


def test_the_template_differs_only_where_the_instance_matters() -> None:
    plain, template = settings("haagent.service"), settings("haagent@.service")
    differing = sorted(k for k in plain.keys() | template.keys() if plain.get(k) != template.get(k))
    assert differing == ["Description", "ExecStart", "SyslogIdentifier"]
    assert "%i" in one("haagent@.service", "Description")
    assert re.fullmatch(r"haagent@%i", one("haagent@.service", "SyslogIdentifier"))
