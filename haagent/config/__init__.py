"""haagent's configuration: one node's YAML file (Patroni's format) and the DCS config.

    settings = load_settings(Path("/etc/haagent/config.yml"))

Errors are `ConfigError`s whose one-line message names the file, the key path and what
is expected; unknown keys are warnings on the `haagent.config` logger.
"""

from haagent.config.dynamic import dynamic_config_to_dict, parse_dynamic_config
from haagent.config.environ import is_agent_variable
from haagent.config.errors import ConfigError
from haagent.config.load import (
    load_settings,
    load_settings_with_warnings,
    parse_settings,
    parse_settings_with_warnings,
    read_yaml,
)
from haagent.config.model import (
    DEFAULT_NAMESPACE,
    Address,
    BootstrapSettings,
    Credentials,
    CtlSettings,
    DynamicConfig,
    DynamicPostgresql,
    Etcd3Settings,
    ListenAddress,
    LogSettings,
    PostgresqlAuthentication,
    PostgresqlSettings,
    RestApiSettings,
    Settings,
    Tags,
    VerifyClient,
    WatchdogMode,
    WatchdogSettings,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "Address",
    "BootstrapSettings",
    "ConfigError",
    "Credentials",
    "CtlSettings",
    "DynamicConfig",
    "DynamicPostgresql",
    "Etcd3Settings",
    "ListenAddress",
    "LogSettings",
    "PostgresqlAuthentication",
    "PostgresqlSettings",
    "RestApiSettings",
    "Settings",
    "Tags",
    "VerifyClient",
    "WatchdogMode",
    "WatchdogSettings",
    "dynamic_config_to_dict",
    "is_agent_variable",
    "load_settings",
    "load_settings_with_warnings",
    "parse_dynamic_config",
    "parse_settings",
    "parse_settings_with_warnings",
    "read_yaml",
]
