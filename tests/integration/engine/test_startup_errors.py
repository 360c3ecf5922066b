"""The agent's start-up failures, on the real command: one line that says what to do.

A REST API port already taken, an unreadable certificate, an etcd that does not
answer: never a Python traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from haagent_lab.lab.processes import free_port

pytestmark = pytest.mark.integration

HOST = "127.0.0.11"


def write_config(workdir: Path, api_port: int, **restapi: Any) -> Path:
    config = {
        "scope": "startup",
        "name": "node1",
        "restapi": {"listen": f"{HOST}:{api_port}", **restapi},
        "etcd3": {"hosts": [f"{HOST}:{free_port(HOST)}"]},  # nobody listens there
        "bootstrap": {"dcs": {"ttl": 10, "loop_wait": 2, "retry_timeout": 2}},
        "postgresql": {
            "listen": f"{HOST}:{free_port(HOST)}",
            "data_dir": str(workdir / "data"),
            "authentication": {
                "superuser": {"username": "postgres", "password": "x"},
                "replication": {"username": "replicator", "password": "y"},
            },
        },
        "watchdog": {"mode": "off"},
    }
    path = workdir / "haagent.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def run_agent(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haagent", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_rest_port_in_use_is_one_line(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(workdir, port)
        done = run_agent(config)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert f"{HOST}:{port}" in errors[0] and "already in use" in errors[0]
    assert f"restapi.listen in {config}" in errors[0]
    assert f"pid {os.getpid()}" in errors[0]  # who holds it


def test_an_unreadable_certificate_is_one_line(workdir: Path) -> None:
    cert = workdir / "server.crt"
    cert.write_text("not read\n")
    cert.chmod(0)
    config = write_config(workdir, free_port(HOST), certfile=str(cert), keyfile=str(cert))
    done = run_agent(config)
    assert done.returncode == 2, done.stderr  # a configuration error: not restarted
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(cert) in errors[0] and "restapi" in errors[0], done.stderr


def test_an_unreachable_etcd_says_where_it_is_configured(workdir: Path) -> None:
    config = write_config(workdir, free_port(HOST))
    log = workdir / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "haagent", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "etcd cannot be reached yet" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            assert agent.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    text = log.read_text()
    assert agent.returncode == 0 and "Traceback" not in text
    line = next(line for line in text.splitlines() if "etcd cannot be reached yet" in line)
    assert "etcd3.hosts" in line and str(config) in line
