"""Fixtures of the haactl unit tests: an in-memory etcd with a three-node cluster."""

import logging
from collections.abc import Iterator

import pytest
from haactl_memory import cli, closed_port, reacting_cli, store

__all__ = ["cli", "closed_port", "reacting_cli", "store"]


@pytest.fixture(autouse=True)
def _haagent_log_level_restored() -> Iterator[None]:
    """haactl quiets the `haagent` loggers of its process; tests run it in pytest's."""
    logger = logging.getLogger("haagent")
    level = logger.level
    yield
    logger.setLevel(level)
