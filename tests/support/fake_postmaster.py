"""A stand-in postmaster for the guard's tests: a Python interpreter started through a
symlink named `postgres`, with `-D <data dir>` on its command line, so /proc/PID/cmdline
looks like a real postmaster's; it writes its pid to `<data dir>/postmaster.pid`.

Modes: `obedient` (SIGINT and SIGQUIT stop it), `stubborn` (ignores SIGINT), `deaf`
(ignores both).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

FAKE_POSTMASTER = """
import os, signal, sys, time
data = sys.argv[sys.argv.index("-D") + 1]
mode = sys.argv[-1]
# Like PostgreSQL, set our own handlers: a shell's background job inherits SIGINT and
# SIGQUIT ignored, and Python keeps an ignored SIGINT ignored.
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
if mode == "stubborn":  # ignores the fast shutdown, obeys the immediate one
    signal.signal(signal.SIGINT, signal.SIG_IGN)
elif mode == "deaf":  # ignores both
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
with open(os.path.join(data, "postmaster.pid.tmp"), "w") as f:
    f.write(f"{os.getpid()}\\n{data}\\n")
os.rename(os.path.join(data, "postmaster.pid.tmp"), os.path.join(data, "postmaster.pid"))
while True:
    time.sleep(0.05)
"""


class FakePostmaster:
    def __init__(self, base: Path, mode: str = "obedient") -> None:
        self.data_dir = base / "data"
        self.data_dir.mkdir(exist_ok=True)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        bin_dir = base / "bin"
        bin_dir.mkdir(exist_ok=True)
        postgres = bin_dir / "postgres"
        if not postgres.exists():
            postgres.symlink_to(sys.executable)
        self.process = subprocess.Popen(
            [str(postgres), "-c", FAKE_POSTMASTER, "-D", str(self.data_dir), mode],
            cwd=self.data_dir,
        )
        deadline = time.monotonic() + 10
        while not (self.data_dir / "postmaster.pid").exists():
            assert time.monotonic() < deadline, "the stand-in postmaster did not start"
            assert self.process.poll() is None, "the stand-in postmaster exited"
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.process.pid

    def gone(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
