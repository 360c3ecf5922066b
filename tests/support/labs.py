"""Three-node labs shared by the tests of a module."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from haagent_lab.lab.cluster import LabCluster

FAST_TIMINGS = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3}


@contextlib.contextmanager
def module_lab(prefix: str, **kw: Any) -> Iterator[LabCluster]:
    """A started three-node cluster for a whole test module (starting one takes a while),
    in a directory of its own; stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o700)
    kw.setdefault("dynamic", dict(FAST_TIMINGS))
    lab = LabCluster(base / "lab", pg_port=None, api_port=None, etcd_ports=None, user=None, **kw)
    try:
        lab.start(timeout=120)
        yield lab
    finally:
        try:
            lab.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def streams_from(lab: LabCluster, upstream: str) -> list[str]:
    """The members streaming from `upstream`, as its published pg_stat_replication says
    (at most a loop_wait old)."""
    code, body = lab.nodes[upstream].api("/patroni")
    if code != 200 or not isinstance(body, dict):
        return []
    rows = body.get("replication") or []
    return sorted(r["application_name"] for r in rows if r.get("state") == "streaming")
