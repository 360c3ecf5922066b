"""The `haactl` command group; its commands are added here as they are built."""

from __future__ import annotations

import click

from haagent import __version__


@click.group(name="haactl", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="haactl", message="%(prog)s %(version)s")
def main() -> None:
    """Inspect and operate a haagent (or Patroni) PostgreSQL cluster."""


if __name__ == "__main__":
    main()
