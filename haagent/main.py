"""The `haagent` command: run the HA agent for one node, or check its config file.

    haagent CONFIG_FILE                    run the agent (as the PostgreSQL OS user)
    haagent                                the same, configured by PATRONI_CONFIGURATION
                                           or the PATRONI_*/HAAGENT_* variables alone
    haagent --validate-config CONFIG_FILE  check the file, exit 0 (valid) or 2 (not); a
                                           valid one's settings that behave differently
                                           from Patroni's are listed after the verdict
    haagent --version

Exit status: 0 success, 1 the agent failed, 2 bad usage or configuration, or the agent
stopped for a reason restarting cannot fix (a failed bootstrap, a name already in use).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from haagent import __version__
from haagent.config import (
    ConfigError,
    LogSettings,
    Settings,
    is_agent_variable,
    load_settings_with_warnings,
)
from haagent.config.differences import differences

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

log = logging.getLogger("haagent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haagent",
        description="High-availability agent for PostgreSQL on etcd v3 "
        "(reads Patroni's YAML configuration).",
    )
    parser.add_argument("config_file", nargs="?", type=Path, help="the node's YAML config file")
    parser.add_argument(
        "--validate-config",
        dest="validate",
        action="store_true",
        help="check the config file and exit: 0 when valid, 2 when not",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `haagent` console script; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    if args.version:
        print(f"haagent {__version__}")
        return EXIT_OK
    path: Path | None = args.config_file
    if path is None and not any(is_agent_variable(name) for name in os.environ):
        parser.print_usage(sys.stderr)
        print(
            "haagent: error: the config file is missing (without one, set PATRONI_CONFIGURATION "
            "to its YAML, or the PATRONI_* variables)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.validate:
        return validate(path)
    return run(path)


def validate(path: Path | None) -> int:
    """`--validate-config`: the verdict on stdout, warnings and errors on stderr."""
    try:
        settings, warnings = load_settings_with_warnings(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path or 'the environment'}: configuration is valid")
    for difference in differences(settings):
        print(f"differs from Patroni: {difference}")
    return EXIT_OK


def run(path: Path | None) -> int:
    """Load the config and run the agent until it is stopped."""
    if os.geteuid() == 0:
        print(
            "error: haagent must not run as root: it runs and owns PostgreSQL. "
            f"Run it as the PostgreSQL OS user, e.g. `sudo -u postgres haagent {path or ''}`",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        settings, warnings = load_settings_with_warnings(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        configure_logging(settings.log)
    except OSError as exc:
        where = path or "environment"
        print(f"error: {where}: log.dir: cannot open the log file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in warnings:
        logging.getLogger("haagent.config").warning("%s", warning)
    return _run_daemon(settings)


def _run_daemon(settings: Settings) -> int:
    # Imported on use: the engine pulls in asyncio, aetcd, psycopg, aiohttp, which
    # `--validate-config` and `--version` do not need.
    from haagent.engine.daemon import run_daemon
    from haagent.errors import StartupError

    try:
        return run_daemon(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status


def configure_logging(settings: LogSettings) -> None:
    """Log lines to stderr, and to `<log.dir>/haagent.log` when `log.dir` is set."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.dir is not None:
        settings.dir.mkdir(parents=True, exist_ok=True)
        # WatchedFileHandler reopens the file after logrotate moved it.
        handlers.append(logging.handlers.WatchedFileHandler(settings.dir / "haagent.log"))
    logging.basicConfig(level=settings.level, format=settings.format, handlers=handlers, force=True)


if __name__ == "__main__":
    sys.exit(main())
