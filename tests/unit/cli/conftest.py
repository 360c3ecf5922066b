"""Fixtures of the haactl unit tests: an in-memory etcd with a three-node cluster."""

from haactl_memory import cli, closed_port, reacting_cli, store

__all__ = ["cli", "closed_port", "reacting_cli", "store"]
