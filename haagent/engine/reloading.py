"""What a reload (SIGHUP, `POST /reload`) applies at once, and what needs a restart.

Applied by the running agent: `restapi` (authentication, allowlist, TLS files,
even the listen address), `ctl` (the peer client's TLS and credentials), `tags`,
`log.level`, and `bootstrap` (read only when a cluster is bootstrapped).  Every
other setting is read once at start: a change to it is named in the reload's
answer and log line as needing a restart.
"""

from __future__ import annotations

import dataclasses

from haagent.config import Settings

APPLIED = frozenset({"restapi", "ctl", "tags", "log.level", "bootstrap"})


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """The key paths (`etcd3.hosts`, `postgresql.parameters`) whose value differs."""
    changed: list[str] = []
    for section in dataclasses.fields(Settings):
        if section.name == "source":
            continue
        before, after = getattr(old, section.name), getattr(new, section.name)
        if not dataclasses.is_dataclass(before):
            if before != after:
                changed.append(section.name)
            continue
        for item in dataclasses.fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                # `raw` (every tag as written, say) is the section itself.
                key = section.name if item.name == "raw" else f"{section.name}.{item.name}"
                if key not in changed:
                    changed.append(key)
    return changed


def needing_restart(changed: list[str]) -> list[str]:
    return [key for key in changed if key not in APPLIED and key.split(".")[0] not in APPLIED]
