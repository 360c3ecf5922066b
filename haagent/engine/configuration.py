"""The one owner of the agent's configuration: the node's settings and the dynamic config.

The settings are the node's YAML (`Settings`); the dynamic config is the cluster-wide
one in effect (the `config` key, or `bootstrap.dcs` while there is none).  The HA loop,
the executor, the request handler and a reload read both here, and nothing keeps a copy.
A reload (SIGHUP, `POST /reload`) replaces the settings (`reload`); each HA cycle
offers the `config` key it observed (`adopt`), and applies what changed (the lease's
ttl, the watchdog, PostgreSQL's parameters) only when `adopt` says so.
"""

from __future__ import annotations

from haagent.config.model import DynamicConfig, Settings
from haagent.config.timing import Timings


class Configuration:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dynamic = settings.bootstrap.dcs
        self._adopted: DynamicConfig | None = None

    @property
    def settings(self) -> Settings:
        """The node's settings (its YAML), as last loaded."""
        return self._settings

    @property
    def dynamic(self) -> DynamicConfig:
        """The cluster-wide dynamic config in effect."""
        return self._dynamic

    def timings(self) -> Timings:
        d = self._dynamic
        return Timings(d.ttl, d.loop_wait, d.retry_timeout)

    def reload(self, settings: Settings) -> None:
        """The settings of a reloaded config file (checked by the caller)."""
        self._settings = settings

    def adopt(self, view_config: DynamicConfig | None) -> bool:
        """Take the `config` key's value (None: there is none, bootstrap.dcs then); True when
        the dynamic config in effect changed (always the first time)."""
        config = view_config if view_config is not None else self._settings.bootstrap.dcs
        if config == self._adopted:
            return False
        self._dynamic = self._adopted = config
        return True
