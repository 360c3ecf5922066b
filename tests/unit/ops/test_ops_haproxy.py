"""haproxy/haproxy.cfg and the lab's generated HAProxy config: valid, and the same checks.

`haproxy -c` resolves server names, and node1..node3 do not resolve here: the
production file is checked with 127.0.0.11-13 written in their place (nothing
else changes).  The lab's config must keep the production file's `listen
primary` and `listen replicas` sections, so the end-to-end tests exercise what
users deploy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from haagent.config.model import Address
from haagent_lab.lab.haproxy import STATS_PASSWORD, STATS_USER, haproxy_config

REPO = Path(__file__).resolve().parents[3]
PRODUCTION = REPO / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (Debian: apt-get install haproxy)"
)
NODES = [(f"node{i}", Address(f"node{i}", 5432), 8008) for i in (1, 2, 3)]


STATS_ENV = {STATS_USER: "admin", STATS_PASSWORD: "s3cret"}


def check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`haproxy -c`, with the stats page's user and password in the environment (or `env`)."""
    assert HAPROXY is not None
    base = {k: v for k, v in os.environ.items() if k not in STATS_ENV}
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**base, **(STATS_ENV if env is None else env)},
    )


def sections(text: str) -> dict[str, list[str]]:
    """Top-level sections (`global`, `defaults`, `listen NAME`) and their lines, comments out."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = found.setdefault(" ".join(line.split()), [])
        else:
            current.append(" ".join(line.split()))
    return found


def with_addresses(text: str) -> str:
    return re.sub(r"(?m)^(\s+server node(\d) )node\d:", r"\g<1>127.0.0.1\2:", text)


@needs_haproxy
def test_the_production_config_is_valid(tmp_path: Path) -> None:
    text = PRODUCTION.read_text()
    resolvable = with_addresses(text)
    assert resolvable.count("127.0.0.1") == 6 and "node1:" not in resolvable
    path = tmp_path / "haproxy.cfg"
    path.write_text(resolvable)
    result = check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_only_the_server_addresses_are_substituted() -> None:
    """What `haproxy -c` checks above is the shipped file, with addresses for names."""
    shipped = PRODUCTION.read_text().splitlines()
    checked = with_addresses(PRODUCTION.read_text()).splitlines()
    changed = [(a, b) for a, b in zip(shipped, checked, strict=True) if a != b]
    assert len(changed) == 6
    for before, after in changed:
        assert before.split()[:2] == after.split()[:2] and before.split()[3:] == after.split()[3:]
        assert re.fullmatch(r"127\.0\.0\.1[123]:5432", after.split()[2])


@needs_haproxy
def test_the_generated_lab_config_is_valid(tmp_path: Path) -> None:
    lab_nodes = [(f"node{i}", Address(f"127.0.0.1{i}", 15431 + i), 18007 + i) for i in (1, 2, 3)]
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(lab_nodes, bind_host="127.0.0.1", ports=(15000, 15001, 17000)))
    result = check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_production_and_lab_route_with_the_same_checks() -> None:
    production = sections(PRODUCTION.read_text())
    generated = sections(haproxy_config(NODES))
    for name in ("listen primary", "listen replicas", "listen stats"):
        expected = [line for line in generated[name] if not line.startswith("option httplog")]
        actual = [line for line in production[name] if not line.startswith("option httplog")]
        assert actual == expected, name


def test_the_production_config_has_the_seed_ports_and_fast_checks() -> None:
    found = sections(PRODUCTION.read_text())
    assert "bind *:5000" in found["listen primary"]
    assert "bind *:5001" in found["listen replicas"]
    assert "bind *:7000" in found["listen stats"]
    assert "option httpchk OPTIONS /primary" in found["listen primary"]
    assert any(
        x.startswith("option httpchk OPTIONS /replica?lag=") for x in found["listen replicas"]
    )
    for name in ("listen primary", "listen replicas"):
        assert "http-check expect status 200" in found[name]
        (default_server,) = [x for x in found[name] if x.startswith("default-server")]
        words = default_server.split()
        assert words[words.index("inter") + 1] == "1s"
        assert words[words.index("fall") + 1] == "2"
        assert words[words.index("rise") + 1] == "1"
        assert "on-marked-down" in words and "shutdown-sessions" in words
        servers = [x for x in found[name] if x.startswith("server ")]
        assert servers == [
            f"server node{i} node{i}:5432 maxconn 100 check port 8008" for i in (1, 2, 3)
        ]
    assert "mode tcp" in found["defaults"]


@needs_haproxy
@pytest.mark.parametrize("which", ["production", "lab"])
def test_the_stats_page_needs_a_password_or_haproxy_does_not_start(
    tmp_path: Path, which: str
) -> None:
    text = (
        with_addresses(PRODUCTION.read_text())
        if which == "production"
        else haproxy_config(NODES, bind_host="127.0.0.1", ports=(15000, 15001, 17000))
    )
    if which == "lab":
        text = re.sub(r"(?m)^(\s+server node(\d) )node\d:", r"\g<1>127.0.0.1\2:", text)
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    assert 'stats auth "${HAPROXY_STATS_USER}:${HAPROXY_STATS_PASSWORD}"' in text
    for env in ({}, {STATS_USER: "admin", STATS_PASSWORD: ""}, {STATS_PASSWORD: "x"}):
        refused = check(path, env)
        assert refused.returncode != 0, env
        assert "the stats page needs a password" in refused.stdout + refused.stderr
    assert check(path).returncode == 0
