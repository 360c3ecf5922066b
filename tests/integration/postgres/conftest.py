"""Fixtures for the PostgreSQL management tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pgnodes import Nodes


@pytest.fixture
async def nodes(workdir: Path) -> AsyncIterator[Nodes]:
    made = Nodes(workdir)
    try:
        yield made
    finally:
        for node in made.made:
            with contextlib.suppress(Exception):
                await node.pg.stop("immediate", timeout=20)
            await node.pg.close()
