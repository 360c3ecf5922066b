"""Benchmark of the REST API's hottest path: `GET /primary` under `wrk -t1 -c8`.

Starts a `RestApiServer` over the in-memory fake controller (publishing a
primary's status) in a child process, runs wrk against it, and prints the
requests per second and the p99 latency.  While wrk runs, the child also
publishes a new status every `--publish-every` seconds, as the HA loop does,
and reports how late its publishing timer fired (a stand-in for the loop's
cycle time under API load).

    .venv/bin/python bench/api_bench.py [--duration 5] [--connections 8] [--path /primary]

Exits non-zero only when a tool fails, not when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_RPS = 15_000
TARGET_P99_MS = 1.0


async def serve(publish_every: float) -> None:
    """The child: prints its port, serves until SIGTERM, prints its timer report as JSON."""
    from haagent.api import RestApiServer
    from haagent.config.model import ListenAddress, RestApiSettings
    from haagent_lab.fake_api import FakeController, primary_status

    logging.basicConfig(level=logging.ERROR)
    controller = FakeController(primary_status(loop_finished_at=time.monotonic()))
    settings = RestApiSettings(listen=ListenAddress(("127.0.0.1",), 0))
    server = RestApiServer(settings, controller, scope="demo", name="node1")
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    lateness: list[float] = []
    while not stop.is_set():
        due = time.monotonic() + publish_every
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), publish_every)
        lateness.append(time.monotonic() - due)
        status = controller.status()
        controller.publish(
            replace(status, loop_count=status.loop_count + 1, loop_finished_at=time.monotonic())
        )
    await server.stop()
    lateness.sort()
    report = {
        "cycles": len(lateness),
        "timer_late_p50_ms": 1000 * lateness[len(lateness) // 2] if lateness else 0.0,
        "timer_late_max_ms": 1000 * lateness[-1] if lateness else 0.0,
    }
    print(json.dumps(report), flush=True)


async def serve_bare() -> None:
    """The child for `--baseline`: a bare aiohttp handler answering a fixed JSON body."""
    from aiohttp import web

    body = b'{"state": "running", "role": "primary"}' * 20

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    runner = web.ServerRunner(web.Server(handler, access_log=None), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def _parse_latency(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@dataclass
class Result:
    rps: float
    p99_ms: float
    non2xx: int
    report: dict[str, float]


def measure(wrk: str, child_args: list[str], path: str, duration: int, connections: int) -> Result:
    """Starts a server child, runs wrk against it, stops the child; raises on tool failure."""
    child = subprocess.Popen(
        [sys.executable, __file__, *child_args], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        port = child.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the server did not start")
        url = f"http://127.0.0.1:{port}{path}"
        run = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        rps_match = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
        p99_match = re.search(r"99%\s+([\d.]+\w+)", run.stdout)
        if run.returncode != 0 or rps_match is None or p99_match is None:
            raise RuntimeError(f"wrk failed:\n{run.stdout}{run.stderr}")
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)
    tail = child.stdout.read().strip()
    return Result(
        rps=float(rps_match.group(1)),
        p99_ms=_parse_latency(p99_match.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        report=json.loads(tail) if tail else {},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--path", default="/primary")
    parser.add_argument("--publish-every", type=float, default=1.0)
    parser.add_argument("--uvloop", action="store_true", help="run the server on uvloop")
    parser.add_argument(
        "--baseline", action="store_true", help="also measure a bare aiohttp handler, for scale"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve or args.serve_bare:
        if args.uvloop:
            import uvloop

            uvloop.install()
        asyncio.run(serve_bare() if args.serve_bare else serve(args.publish_every))
        return 0

    wrk = shutil.which("wrk")
    if wrk is None:
        print("api_bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    loop_args = ["--uvloop"] if args.uvloop else []
    runs = [("haagent", ["--serve", "--publish-every", str(args.publish_every), *loop_args])]
    if args.baseline:
        runs.append(("bare aiohttp", ["--serve-bare", *loop_args]))
    for label, child_args in runs:
        try:
            result = measure(wrk, child_args, args.path, args.duration, args.connections)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"api_bench: {exc}", file=sys.stderr)
            return 2
        ok = result.rps >= TARGET_RPS and result.p99_ms < TARGET_P99_MS
        print(
            f"{label}: GET {args.path}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.3f} ms"
            f" (wrk -t1 -c{args.connections} -d{args.duration}s"
            f"{', uvloop' if args.uvloop else ''}; target >= {TARGET_RPS:,} req/s,"
            f" p99 < {TARGET_P99_MS} ms: {'met' if ok else 'MISSED'})"
        )
        if result.non2xx:
            print(f"  non-2xx answers: {result.non2xx}")
        if result.report:
            print(
                f"  publisher timer during the run: {result.report['cycles']:.0f} cycles, late by"
                f" p50 {result.report['timer_late_p50_ms']:.2f} ms,"
                f" max {result.report['timer_late_max_ms']:.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
