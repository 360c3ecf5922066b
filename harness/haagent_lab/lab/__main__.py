"""`dev/lab up|status|down`: a local three-node haagent lab on this machine.

up     starts a three-member etcd, three agents with PostgreSQL on 127.0.0.11-13
       and HAProxy on 127.0.0.1:5000 (writes), :5001 (reads), :7000 (stats);
       running it again while the lab is up only shows its status.
status shows the cluster (`haactl list`).
down   stops every process the lab started, by pid, and removes its data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from haagent_lab.lab.cluster import LAB_PASSWORD, LAB_STATS, LabCluster
from haagent_lab.lab.haproxy import routes_match, server_states
from haagent_lab.lab.processes import ProcessError

DEFAULT_DIR = Path(os.environ.get("HAAGENT_LAB_DIR", "/var/tmp/haagent-lab"))
STATE = "lab-state.json"


def make_lab(base: Path) -> LabCluster:
    user = "postgres" if os.geteuid() == 0 else None
    return LabCluster(base, user=user, haproxy_ports=(5000, 5001, 7000))


def pid_matches(pid: int, needle: str) -> bool:
    """True if `pid` is alive and its command line contains `needle` (guards against reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return needle in cmdline


def stop_pid(pid: int, needle: str, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
    if not pid_matches(pid, needle):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_matches(pid, needle):
        time.sleep(0.1)
    if pid_matches(pid, needle):
        os.kill(pid, signal.SIGKILL)


def read_state(base: Path) -> dict[str, list[object]]:
    try:
        state: dict[str, list[object]] = json.loads((base / STATE).read_text())
        return state
    except (OSError, ValueError):
        return {}


def lab_running(base: Path) -> bool:
    state = read_state(base)
    return bool(state) and any(pid_matches(int(str(p)), str(n)) for p, n in state.values())


def stats_url(lab: LabCluster) -> str:
    return lab.stats_url


def wait_for_haproxy(lab: LabCluster, timeout: float = 30.0) -> None:
    """Wait until HAProxy's health checks send writes to the leader and reads to the others."""
    leader = lab.leader()
    if leader is None:
        return
    try:
        lab.wait_for(
            lambda: routes_match(stats_url(lab), leader, lab.nodes, LAB_STATS), "HAProxy", timeout
        )
    except ProcessError:
        print(f"warning: HAProxy does not route writes to {leader} yet", file=sys.stderr)


def show_haproxy(lab: LabCluster) -> None:
    try:
        states = server_states(stats_url(lab), credentials=LAB_STATS)
    except (OSError, ValueError) as e:
        print(f"HAProxy: no answer from {stats_url(lab)} ({e})")
        return
    for proxy, port in (("primary", "writes"), ("replicas", "reads")):
        up = [server for server, status in states.get(proxy, {}).items() if status == "UP"]
        print(f"HAProxy {port} go to: {', '.join(up) or 'nobody'}")


def show(base: Path) -> int:
    config = base / "node1" / "haagent.yml"
    cmd = [sys.executable, "-m", "haagent.cli.main", "-c", str(config), "list"]
    result = subprocess.run(cmd, check=False)
    lab = make_lab(base)
    if result.returncode != 0:
        for name, (code, body) in lab.statuses().items():
            role = body.get("role") if isinstance(body, dict) else body
            print(f"{name}: {role} ({code})")
    show_haproxy(lab)
    return 0


def up(base: Path) -> int:
    if lab_running(base):
        print(f"the lab is already up (state in {base / STATE}):")
        return show(base)
    if base.exists():
        shutil.rmtree(base)
    lab = make_lab(base)
    print("starting etcd, three agents and HAProxy; bootstrapping takes a few seconds ...")
    state: dict[str, list[object]] = {}
    try:
        lab.start(timeout=180)
    except ProcessError as e:
        print(f"the lab did not come up: {e}", file=sys.stderr)
        return 1
    finally:
        for member in lab.etcd.members:
            if member.process is not None:
                state[member.name] = [member.process.pid, "etcd"]
        for name, node in lab.nodes.items():
            if node.agent is not None:
                state[f"agent-{name}"] = [node.agent.pid, str(node.config_path)]
        if lab.haproxy is not None:
            state["haproxy"] = [lab.haproxy.pid, "haproxy"]
        (base / STATE).write_text(json.dumps(state, indent=1))
    wait_for_haproxy(lab)
    print(
        f"""
The lab is up.  Connect (password {LAB_PASSWORD}):
  writes:  psql "host=127.0.0.1 port=5000 user=postgres dbname=postgres"
  reads:   psql "host=127.0.0.1 port=5001 user=postgres dbname=postgres"
  stats:   http://127.0.0.1:7000/ (user {LAB_STATS[0]}, password {LAB_STATS[1]})
  haactl:  .venv/bin/haactl -c {base}/node1/haagent.yml list
Try a switchover:  .venv/bin/haactl -c {base}/node1/haagent.yml switchover --force
Stop it all:       dev/lab down
"""
    )
    return show(base)


def down(base: Path) -> int:
    state = read_state(base)
    agents = {k: v for k, v in state.items() if k.startswith("agent-")}
    for pid, needle in agents.values():
        stop_pid(int(str(pid)), str(needle))
    lab = make_lab(base)
    for name in lab.nodes:
        lab.stop_postgres(name)
    for key, (pid, needle) in state.items():
        if key not in agents:
            stop_pid(int(str(pid)), str(needle))
    if base.exists():
        shutil.rmtree(base)
    print("the lab is down: every process it started is stopped and its data removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev/lab", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "status", "down"], nargs="?", default="up")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the lab keeps data")
    args = parser.parse_args(argv)
    base: Path = args.dir
    if args.command == "up":
        return up(base)
    if args.command == "status":
        if not lab_running(base):
            print("the lab is not running: start it with `dev/lab up`")
            return 1
        return show(base)
    return down(base)


if __name__ == "__main__":
    sys.exit(main())
