"""`python -m haagent_lab.chaos [SCENARIO ...]`: run failure scenarios, print a table and JSON.

Run as root (the agents and PostgreSQL then run as the postgres OS user) or as
the postgres user, after `dev/setup` as root (it installs the nftables helper).
Exit status 0 when every scenario passed, 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from haagent_lab.chaos.result import Result, markdown, table, to_json
from haagent_lab.chaos.runner import COMMAND_HOSTS, run_scenario
from haagent_lab.chaos.scenario import PROFILES, Scenario
from haagent_lab.chaos.scenarios import FAST, SCENARIOS
from haagent_lab.lab.netfault import unavailable_reason


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m haagent_lab.chaos",
        description="Run haagent's failure scenarios on a fresh three-node lab each.",
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO[@PROFILE]", help="default: all")
    parser.add_argument("--fast", action="store_true", help="only the CI subset: " + " ".join(FAST))
    parser.add_argument(
        "--profile",
        choices=[*PROFILES, "both"],
        default="both",
        help="timings: fast (ttl 10, loop_wait 2, retry_timeout 3), patroni (Patroni's "
        "defaults 30/10/10), or both (the default); SCENARIO@PROFILE picks one per scenario",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--dir", type=Path, help="where the labs live (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each lab's data and logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:34} {s.title}{'  [fast]' if s.fast else ''}")
        return 0
    names = args.scenarios or (FAST if args.fast else list(SCENARIOS))
    profiles = list(PROFILES) if args.profile == "both" else [args.profile]
    chosen: list[Scenario] = []
    for name in names:
        base, _, profile = name.partition("@")
        if base not in SCENARIOS or (profile and profile not in PROFILES):
            print(f"unknown scenario {name}; see --list for the names", file=sys.stderr)
            return 2
        chosen += [SCENARIOS[base].at(p) for p in ([profile] if profile else profiles)]
    if any(s.network for s in chosen) and (reason := unavailable_reason()) is not None:
        print(f"cannot inject network faults: {reason}", file=sys.stderr)
        return 2
    user = "postgres" if os.geteuid() == 0 else None
    base = args.dir or Path(tempfile.mkdtemp(prefix="haagent-chaos-", dir="/var/tmp"))
    results: list[Result] = []
    for scenario in chosen:
        results.append(run_scenario(scenario, base, user, keep=args.keep, hosts=COMMAND_HOSTS))
        print(table(results[-1:]), flush=True)
        if args.json is not None:
            args.json.write_text(to_json(results))
    print()
    print(markdown(results) if args.markdown else table(results))
    for r in results:
        for note in r.notes:
            print(f"  {r.scenario}: {note}")
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} scenarios passed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
