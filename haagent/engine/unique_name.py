"""Refusing to start under a name a running member already uses, as Patroni refuses.

Two agents with one name would take turns writing one member key and pass the
leader key between them.  Before it starts anything, the agent looks for its
name among the members in etcd; when that member's REST API answers (any HTTP
answer, or a TLS handshake: something runs there), the name is in use.  When
nothing answers (the member key of this very node, left by an agent that just
died and not expired yet), the agent starts: it is the same node coming back.
"""

from __future__ import annotations

import logging

import aiohttp

from haagent.dcs.model import ClusterView

log = logging.getLogger("haagent")
TIMEOUT = 3.0  # seconds for the other member's API to answer, as Patroni waits


def liveness_url(api_url: str) -> str:
    """`http://host:8008/patroni` -> `http://host:8008/liveness`."""
    base = api_url.rstrip("/")
    if base.endswith("/patroni"):
        base = base[: -len("/patroni")]
    return base + "/liveness"


async def answers(url: str, timeout: float = TIMEOUT) -> bool:
    """Whether an HTTP server answers at `url` (any status; a TLS peer counts as one)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=False) as reply,
        ):
            await reply.read()
            return True
    except aiohttp.ClientSSLError:
        return True
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def name_in_use(view: ClusterView, name: str, timeout: float = TIMEOUT) -> str | None:
    """Why `name` cannot be used (a running member has it), or None when it can."""
    member = view.members.get(name)
    if member is None or not member.api_url:
        return None
    url = liveness_url(member.api_url)
    if not await answers(url, timeout):
        log.info(
            "member %s is in etcd but its REST API (%s) does not answer: taking the name over",
            name, url,
        )  # fmt: skip
        return None
    return (
        f"stopping: there is already a running member named {name!r} in this cluster (its "
        f"REST API answers at {url}); two agents with one name would fight over one member "
        "key: give this node another name (`name` in its config), or stop the other agent"
    )
