"""HAAGENT_* environment variables: they override the file, key by key.

A value set this way is checked like the file's; an error in it names the variable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from haagent.config.parse import Context

# Variable -> the key path it sets.
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "HAAGENT_NAME": ("name",),
    "HAAGENT_SCOPE": ("scope",),
    "HAAGENT_NAMESPACE": ("namespace",),
    "HAAGENT_RESTAPI_LISTEN": ("restapi", "listen"),
    "HAAGENT_RESTAPI_CONNECT_ADDRESS": ("restapi", "connect_address"),
    "HAAGENT_RESTAPI_USERNAME": ("restapi", "authentication", "username"),
    "HAAGENT_RESTAPI_PASSWORD": ("restapi", "authentication", "password"),
    "HAAGENT_ETCD3_HOSTS": ("etcd3", "hosts"),
    "HAAGENT_ETCD3_USERNAME": ("etcd3", "username"),
    "HAAGENT_ETCD3_PASSWORD": ("etcd3", "password"),
    "HAAGENT_POSTGRESQL_LISTEN": ("postgresql", "listen"),
    "HAAGENT_POSTGRESQL_CONNECT_ADDRESS": ("postgresql", "connect_address"),
    "HAAGENT_POSTGRESQL_DATA_DIR": ("postgresql", "data_dir"),
    "HAAGENT_POSTGRESQL_BIN_DIR": ("postgresql", "bin_dir"),
    "HAAGENT_POSTGRESQL_PGPASS": ("postgresql", "pgpass"),
    "HAAGENT_SUPERUSER_USERNAME": ("postgresql", "authentication", "superuser", "username"),
    "HAAGENT_SUPERUSER_PASSWORD": ("postgresql", "authentication", "superuser", "password"),
    "HAAGENT_REPLICATION_USERNAME": ("postgresql", "authentication", "replication", "username"),
    "HAAGENT_REPLICATION_PASSWORD": ("postgresql", "authentication", "replication", "password"),
    "HAAGENT_REWIND_USERNAME": ("postgresql", "authentication", "rewind", "username"),
    "HAAGENT_REWIND_PASSWORD": ("postgresql", "authentication", "rewind", "password"),
    "HAAGENT_LOG_LEVEL": ("log", "level"),
    "HAAGENT_LOG_DIR": ("log", "dir"),
}


def apply_environment(
    ctx: Context, data: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of `data` with the HAAGENT_* variables of `environ` applied.

    Records in `ctx.env_keys` which key paths came from which variable, so errors in them
    name the variable.  `HAAGENT_ETCD3_HOSTS` is a comma-separated list and replaces both
    `etcd3.host` and `etcd3.hosts`.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for variable, path in ENVIRONMENT.items():
        if variable not in environ:
            continue
        value: Any = environ[variable]
        parent = result
        for name in path[:-1]:
            child = parent.get(name)
            parent[name] = child = dict(child) if isinstance(child, Mapping) else {}
            parent = child
        if path == ("etcd3", "hosts"):
            parent.pop("host", None)
            value = [host.strip() for host in value.split(",")] if value.strip() else value
        parent[path[-1]] = value
        ctx.env_keys[".".join(path)] = variable
    return result
