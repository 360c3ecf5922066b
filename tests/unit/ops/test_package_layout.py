"""The product holds the product: no arrow runs from `haagent` into its test harness.

haagent's wheel ships `haagent` only; the lab, the failure suite, the simulation, the
watchdog simulator and the in-memory fakes are `haagent_lab` (harness/), which the
product never imports.  Inside the harness, the lab and the watchdog stand-ins do not
import each other either.  Inside the product, the arrows run one way: the engine uses
`core`, `postgres`, `watchdog` and `dcs`, and none of those imports the engine (the
types they share with it live beside them, e.g. `postgres/model.py`).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PRODUCT = REPO / "haagent"
HARNESS = REPO / "harness" / "haagent_lab"
# What moved out of the product, as module paths under haagent/.
MOVED = ["lab", "chaos", "sim", "api/testing", "watchdog/simulator", "watchdog/proctree",
         "watchdog/testing", "watchdog/fake", "watchdog/harness"]  # fmt: skip


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of a file, dynamic ones by a literal name too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level == 0:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def imports_of(root: Path, package: str) -> list[str]:
    """`file:line: module` for each import under `root` of `package` or a module in it."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, module in sorted(imported_modules(path)):
            if module == package or module.startswith(f"{package}."):
                found.append(f"{path.relative_to(root)}:{line}: {module}")
    return found


def test_the_import_scan_sees_imports(tmp_path: Path) -> None:
    (tmp_path / "sample.py").write_text(
        "import haagent_lab.lab\nfrom haagent_lab.sim import cluster\nimport haagent_labs\n"
        "import importlib\nimportlib.import_module('haagent_lab.chaos')\n"
        "from haagent_lab import fake_api\n"
    )
    assert imports_of(tmp_path, "haagent_lab") == [
        "sample.py:1: haagent_lab.lab",
        "sample.py:2: haagent_lab.sim",
        "sample.py:5: haagent_lab.chaos",
        "sample.py:6: haagent_lab",
    ]


def test_the_product_never_imports_the_harness() -> None:
    assert imports_of(PRODUCT, "haagent_lab") == []


def test_the_harness_is_no_longer_in_the_product() -> None:
    left = [
        name
        for name in MOVED
        if (PRODUCT / f"{name}.py").exists() or any((PRODUCT / name).rglob("*.py"))
    ]
    assert left == [], f"harness code still in haagent/: {left}"


def test_the_wheel_ships_only_haagent() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == [
        "haagent",
        "haagent.*",
    ]


@pytest.mark.parametrize(("importer", "imported"), [("lab", "watchdog"), ("watchdog", "lab")])
def test_the_lab_and_the_watchdog_stand_ins_do_not_import_each_other(
    importer: str, imported: str
) -> None:
    assert imports_of(HARNESS / importer, f"haagent_lab.{imported}") == []


@pytest.mark.parametrize("package", ["core", "config", "dcs", "postgres", "watchdog"])
def test_no_arrow_runs_back_up_into_the_engine(package: str) -> None:
    assert imports_of(PRODUCT / package, "haagent.engine") == []


def test_the_arrow_scan_sees_an_import_of_the_engine(tmp_path: Path) -> None:
    (tmp_path / "port.py").write_text("from haagent.engine.ports import PostgresControl\n")
    assert imports_of(tmp_path, "haagent.engine") == ["port.py:1: haagent.engine.ports"]


CLOCK_READS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"), ("datetime", "utcnow")}


def clock_reads(path: Path) -> list[str]:
    """`file:line: module.function` for each use of a system clock in a file (a call, or the
    function handed on as a default clock)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (name, node.attr) in CLOCK_READS:
                found.append(f"{path.name}:{node.lineno}: {name}.{node.attr}")
    return sorted(found)


def test_the_engine_reads_the_time_only_through_its_injected_clocks() -> None:
    engine = PRODUCT / "engine"
    reads = [r for p in sorted(engine.glob("*.py")) if p.name != "clock.py" for r in clock_reads(p)]
    assert reads == [], "engine code reads a system clock: take `Clocks` (engine/clock.py)"
    assert clock_reads(engine / "clock.py") == ["clock.py:27: datetime.now"]


def test_the_clock_scan_sees_a_clock_read(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text(
        "import time, datetime\ntime.time()\ndatetime.datetime.now()\nclock = time.monotonic\n"
    )
    assert clock_reads(tmp_path / "x.py") == [
        "x.py:2: time.time",
        "x.py:3: datetime.now",
        "x.py:4: time.monotonic",
    ]
