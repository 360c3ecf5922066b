"""Where things are: the data directory, the files haagent owns, the PostgreSQL binaries.

Config files (see conf.py): when `postgresql.config_dir` is not set, haagent's
`postgresql.conf` lives in the data directory, as PostgreSQL expects.  The
user's own `postgresql.conf` (initdb's, or one they wrote) is renamed once to
`postgresql.base.conf` and included first by haagent's file, so nothing the
user wrote is lost and haagent's values win.  This is what Patroni does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from haagent.config.model import PostgresqlSettings
from haagent.postgres.errors import ConfigurationError, DataDirectoryError

MANAGED_MARKER = "# Managed by haagent"
EXAMPLE_BIN_DIR = "/usr/lib/postgresql/15/bin"


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    config_dir: Path
    bin_dir: Path

    @classmethod
    def from_settings(cls, settings: PostgresqlSettings) -> Layout:
        return cls(settings.data_dir, settings.effective_config_dir, settings.bin_dir)

    @property
    def conf_file(self) -> Path:
        return self.config_dir / "postgresql.conf"

    @property
    def base_conf(self) -> Path:
        return self.config_dir / "postgresql.base.conf"

    @property
    def hba_file(self) -> Path:
        return self.config_dir / "pg_hba.conf"

    @property
    def ident_file(self) -> Path:
        return self.config_dir / "pg_ident.conf"

    @property
    def separate_config_dir(self) -> bool:
        return self.config_dir.absolute() != self.data_dir.absolute()

    @property
    def standby_signal(self) -> Path:
        return self.data_dir / "standby.signal"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def pg_version(self) -> Path:
        return self.data_dir / "PG_VERSION"

    @property
    def log_file(self) -> Path:
        """The postmaster's stderr: startup errors (the whole log without a collector)."""
        return self.data_dir / "haagent-postmaster.log"

    def initialized(self) -> bool:
        return self.pg_version.is_file()

    def binary(self, name: str) -> Path:
        """`bin_dir/name`, or a ConfigurationError saying how to fix `postgresql.bin_dir`."""
        path = self.bin_dir / name
        if not path.is_file() or not os.access(path, os.X_OK):
            where = "does not exist" if not self.bin_dir.is_dir() else f"has no executable {name}"
            raise ConfigurationError(
                f"postgresql.bin_dir {self.bin_dir} {where}: set it to the directory with "
                f"PostgreSQL 15's binaries, e.g. {EXAMPLE_BIN_DIR}"
            )
        return path


def owner_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_owned(path: Path, what: str) -> None:
    """Raise DataDirectoryError unless `path` belongs to the OS user running the agent."""
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise DataDirectoryError(
            f"{what} {path} is owned by {owner_name(info.st_uid)}, not by "
            f"{owner_name(os.geteuid())} who runs haagent and PostgreSQL: if it really is this "
            f"node's data directory, give it to {owner_name(os.geteuid())} (chown -R); "
            "otherwise point postgresql.data_dir elsewhere"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise DataDirectoryError(f"{what} {path} is not a directory")


def check_data_dir_usable(layout: Layout) -> None:
    """Before starting: the data directory exists, is initialized and is ours."""
    if not layout.data_dir.is_dir():
        raise DataDirectoryError(
            f"data directory {layout.data_dir} does not exist: bootstrap a cluster or clone a "
            "replica first"
        )
    check_owned(layout.data_dir, "data directory")
    if not layout.initialized():
        raise DataDirectoryError(
            f"data directory {layout.data_dir} has no PG_VERSION: it is not a PostgreSQL "
            "cluster (bootstrap or clone one into it first)"
        )
