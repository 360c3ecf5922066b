"""Calling a member's REST API at the `api_url` read from etcd: which URLs, how much answer.

Used by the agent's peer client and by haactl: both treat the address and the
answer as untrusted input.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp


def api_url_problem(url: str) -> str | None:
    """Why `url` is not an address to call, or None.

    Only `http://` and `https://` URLs naming a host, without credentials in them and
    without control characters: anything else in etcd is not a member's REST API.
    """
    shown = repr(url[:80])
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        return f"api_url {shown} is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"api_url {shown} is not an http:// or https:// URL"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return f"api_url {shown} names no host, or carries credentials"
    if not url.isprintable():
        return f"api_url {shown} contains control characters"
    return None


async def read_limited(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or ValueError as soon as it passes `limit` bytes (the rest unread)."""
    body = b""
    while True:
        chunk = await content.read(limit + 1 - len(body))
        if not chunk:
            return body
        body += chunk
        if len(body) > limit:
            raise ValueError(f"the answer is over {limit} bytes")
