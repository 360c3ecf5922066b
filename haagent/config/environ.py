"""Settings from environment variables, named as Patroni names them: they override the file.

Every setting Patroni reads from a `PATRONI_*` variable is read here too, under the
same name and with the `HAAGENT_` prefix as well; `HAAGENT_*` wins over `PATRONI_*`,
and both win over the file.  The names follow Patroni's rules:

- `<PREFIX>NAME`, `NAMESPACE`, `SCOPE`: the top-level keys;
- `<PREFIX><SECTION>_<KEY>` for the keys of `restapi`, `ctl`, `postgresql`, `log` and
  `raft` listed below (`PATRONI_RESTAPI_LISTEN`, `PATRONI_POSTGRESQL_DATA_DIR`, ...);
- `<PREFIX>RESTAPI_USERNAME`/`PASSWORD` and `CTL_USERNAME`/`PASSWORD`: the section's
  `authentication`;
- `<PREFIX>SUPERUSER_*`, `REPLICATION_*`, `REWIND_*`: `postgresql.authentication.<user>`,
  with the libpq keys Patroni accepts there (`USERNAME`, `PASSWORD`, `SSLMODE`, ...);
- `<PREFIX>POSTGRESQL_BIN_<TOOL>`: `postgresql.bin_name.<tool>`;
- `<PREFIX><DCS>_<KEY>` for a DCS section and the keys of `_DCS_KEYS`
  (`PATRONI_ETCD3_HOSTS`, `PATRONI_ETCD3_CACERT`, ...), plus `USERNAME`/`PASSWORD` for
  `etcd` and `etcd3`;
- `<PREFIX>LOGLEVEL`, `LOGFORMAT`, `LOG_DATEFMT`: Patroni's old names of the log keys.

Lists (`ETCD3_HOSTS`, `RESTAPI_ALLOWLIST`) are YAML lists or comma-separated, mappings
(`RESTAPI_HTTP_EXTRA_HEADERS`) YAML mappings, as in Patroni.  A variable sets the key
as if the file had it: the value is checked like the file's, and an error in it names
the variable.  An empty `PATRONI_*` variable is ignored, as Patroni ignores it; an
empty `HAAGENT_*` one is refused like an empty value in the file.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any

import yaml

from haagent.config.errors import ConfigError
from haagent.config.parse import Context
from haagent.config.postgresql import LIBPQ_KEYS

PREFIXES = ("PATRONI_", "HAAGENT_")  # applied in this order: HAAGENT_* wins
_TOP = ("name", "namespace", "scope", "thread_pool_size", "thread_stack_size")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "restapi": (
        "listen", "connect_address", "certfile", "keyfile", "keyfile_password", "cafile",
        "ciphers", "verify_client", "http_extra_headers", "https_extra_headers", "allowlist",
        "allowlist_include_members", "request_queue_size", "server_tokens",
    ),
    "ctl": ("insecure", "cacert", "certfile", "keyfile", "keyfile_password"),
    "postgresql": (
        "listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass",
        "bin_dir",
    ),
    "log": (
        "type", "level", "traceback_level", "format", "dateformat", "static_fields",
        "max_queue_size", "dir", "mode", "file_size", "file_num", "loggers",
        "deduplicate_heartbeat_logs",
    ),
    "raft": (
        "data_dir", "self_addr", "partner_addrs", "password", "bind_addr", "min_timeout",
        "max_timeout", "connection_timeout", "append_entries_period",
        "connection_retry_time", "leader_fallback_timeout",
    ),
}  # fmt: skip
_OLD_LOG_NAMES = {"loglevel": "level", "logformat": "format", "log_datefmt": "dateformat"}
_BINARIES = (
    "pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready", "pg_rewind",
)  # fmt: skip
# The keys of postgresql.authentication.<user>.
AUTH_KEYS = ("username", "password", *LIBPQ_KEYS)
_POSTGRES_USERS = ("replication", "superuser", "rewind")
# PATRONI_<DCS>_<KEY>: the keys Patroni takes for any DCS section.
_DCS_KEYS = (
    "HOST", "HOSTS", "PORT", "USE_PROXIES", "PROTOCOL", "SRV", "SRV_SUFFIX", "URL", "PROXY",
    "CACERT", "CERT", "KEY", "VERIFY", "TOKEN", "CHECKS", "DC", "CONSISTENCY",
    "REGISTER_SERVICE", "SERVICE_CHECK_INTERVAL", "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS", "NAMESPACE", "CONTEXT", "USE_ENDPOINTS", "SCOPE_LABEL", "ROLE_LABEL",
    "POD_IP", "PORTS", "LABELS", "BYPASS_API_SERVICE", "RETRIABLE_HTTP_CODES", "KEY_PASSWORD",
    "USE_SSL", "SET_ACLS", "GROUP", "DATABASE", "LEADER_LABEL_VALUE", "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE", "TMP_ROLE_LABEL", "AUTH_DATA", "BOOTSTRAP_LABELS",
)  # fmt: skip
_LISTS = {
    ("restapi", "allowlist"), ("raft", "partner_addrs"),
    *((None, key) for key in ("hosts", "ports", "checks", "service_tags", "retriable_http_codes")),
}  # fmt: skip
_MAPPINGS = {
    ("restapi", "http_extra_headers"), ("restapi", "https_extra_headers"),
    ("log", "static_fields"), ("log", "loggers"),
    *((None, key) for key in ("labels", "set_acls", "auth_data", "bootstrap_labels")),
}  # fmt: skip

Path = tuple[str, ...]


def is_agent_variable(name: str) -> bool:
    """A variable that configures the agent (and may hold a password): not for its children."""
    return name.startswith(PREFIXES)


def variables(environ: Mapping[str, str], prefix: str) -> dict[Path, str]:
    """The key paths the `prefix` variables of `environ` set -> the variable's name."""
    found: dict[Path, str] = {}
    present = {name[len(prefix) :].lower(): name for name in environ if name.startswith(prefix)}

    def take(suffix: str, path: Path) -> None:
        if suffix in present:
            found[path] = present.pop(suffix)

    for key in _TOP:
        take(key, (key,))
    for section, keys in _SECTIONS.items():
        for key in keys:
            take(f"{section}_{key}", (section, key))
    for old, new in _OLD_LOG_NAMES.items():
        if ("log", new) not in found:
            take(old, ("log", new))
        else:
            present.pop(old, None)
    for tool in _BINARIES:
        take(f"postgresql_bin_{tool}", ("postgresql", "bin_name", tool))
    for section in ("restapi", "ctl"):
        for key in AUTH_KEYS[:2]:
            take(f"{section}_{key}", (section, "authentication", key))
    for user in _POSTGRES_USERS:
        for key in AUTH_KEYS:
            take(f"{user}_{key}", ("postgresql", "authentication", user, key))
    sections = set()
    for suffix in list(present):
        dcs, _, key = suffix.partition("_")
        if dcs and key.upper() in _DCS_KEYS:
            found[(dcs, key)] = present.pop(suffix)
            sections.add(dcs)
    for dcs in sections & {"etcd", "etcd3"}:
        for key in AUTH_KEYS[:2]:
            take(f"{dcs}_{key}", (dcs, key))
    return found


def _value(path: Path, variable: str, text: str) -> Any:
    """The variable's text as the key's value: lists and mappings are YAML, as in Patroni."""
    section, key = (path[0], path[1]) if len(path) == 2 else ("", "")
    if (section, key) in _LISTS or (None, key) in _LISTS:
        written = [text] if text.lstrip().startswith(("-", "[")) else []
        for candidate in [*written, f"[{text}]"]:
            with contextlib.suppress(yaml.YAMLError):
                value = yaml.safe_load(candidate)
                if isinstance(value, list) and not any(isinstance(v, list | dict) for v in value):
                    return value
        # What YAML cannot read as a flat list (`[::1]:2379,[::2]:2379`): split at commas.
        return [item.strip() for item in text.split(",")]
    if (section, key) in _MAPPINGS or (None, key) in _MAPPINGS:
        wrapped = text if text.strip().startswith("{") else f"{{{text}}}"
        try:
            value = yaml.safe_load(wrapped)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, dict):
            raise ConfigError(
                variable, f"{text!r} cannot be read", "a YAML mapping (key: value, ...)",
                origin="environment",
            )  # fmt: skip
        return value
    return text


def apply_environment(
    ctx: Context, data: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of `data` with the PATRONI_* and HAAGENT_* variables of `environ` applied.

    Records in `ctx.env_keys` which key paths came from which variable, so errors in them
    name the variable.  A DCS `HOST` or `HOSTS` variable replaces both `host` and `hosts`
    of the file's section.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for prefix in PREFIXES:
        for path, variable in variables(environ, prefix).items():
            text = environ[variable]
            if prefix == "PATRONI_" and not text:
                continue
            parent = result
            for name in path[:-1]:
                child = parent.get(name)
                parent[name] = child = dict(child) if isinstance(child, Mapping) else {}
                parent = child
            key = path[-1]
            if len(path) == 2 and key in ("host", "hosts"):
                parent.pop("host", None)
                parent.pop("hosts", None)
                key = "hosts"
                path = (path[0], key)
            parent[key] = _value(path, variable, text) if text.strip() else text
            ctx.env_keys[".".join((*path[:-1], key))] = variable
    return result
