"""Writing the files haagent owns, atomically, without clobbering the user's own."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Collection
from pathlib import Path

from haagent.postgres.errors import DataDirectoryError
from haagent.postgres.layout import MANAGED_MARKER, Layout


def write_atomic(path: Path, text: str, mode: int = 0o600) -> bool:
    """Write `text` to `path` via a temp file and rename; created with `mode` from the start.

    Returns False (and writes nothing) when the file already holds exactly `text`.
    """
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    tmp = path.with_name(f".{path.name}.haagent-tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def is_managed(path: Path) -> bool:
    try:
        with path.open() as f:
            return f.readline().startswith(MANAGED_MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def adopt_user_conf(layout: Layout) -> str | None:
    """Keep the user's postgresql.conf as postgresql.base.conf before writing haagent's.

    Returns what was done (for the log), or None when there was nothing to do.
    Never overwrites: a user file that would clobber an existing base conf is
    renamed to `postgresql.conf.haagent-<time>` instead.
    """
    notes: list[str] = []
    layout.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_conf = layout.data_dir / "postgresql.conf"
    if layout.separate_config_dir:
        for name in ("pg_hba.conf", "pg_ident.conf"):
            if not (layout.config_dir / name).exists() and (layout.data_dir / name).exists():
                shutil.copy2(layout.data_dir / name, layout.config_dir / name)
                notes.append(f"copied {name} into {layout.config_dir}")
        if data_conf.exists() and not layout.conf_file.exists() and not is_managed(data_conf):
            shutil.copy2(data_conf, layout.conf_file)
    conf = layout.conf_file
    if conf.exists() and not is_managed(conf):
        if layout.base_conf.exists():
            backup = conf.with_name(f"postgresql.conf.haagent-{int(time.time())}")
            os.replace(conf, backup)
            notes.append(f"kept the unmanaged {conf} as {backup.name}")
        else:
            os.replace(conf, layout.base_conf)
            notes.append(f"kept the original {conf} as {layout.base_conf.name}")
    return "; ".join(notes) or None


def set_standby_signal(layout: Layout, standby: bool) -> None:
    if standby:
        if not layout.standby_signal.exists():
            write_atomic(layout.standby_signal, "")
    else:
        layout.standby_signal.unlink(missing_ok=True)
    (layout.data_dir / "recovery.signal").unlink(missing_ok=True)


def set_recovery_signal(layout: Layout) -> None:
    """recovery.signal (and no standby.signal): a restored cluster recovers, then promotes."""
    write_atomic(layout.data_dir / "recovery.signal", "")
    layout.standby_signal.unlink(missing_ok=True)


_SETTING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=|\s)")


def strip_auto_conf(layout: Layout, names: Collection[str]) -> list[str]:
    """Remove the settings `names` from postgresql.auto.conf (PostgreSQL must be stopped);
    the names removed.  A restore tool (pgBackRest) writes its restore_command and recovery
    target there, which would outlive the restore: the recovery settings are haagent's."""
    path = layout.data_dir / "postgresql.auto.conf"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return []
    kept: list[str] = []
    removed: list[str] = []
    for line in text.splitlines(keepends=True):
        match = _SETTING.match(line)
        if match is not None and match.group(1).lower() in names:
            removed.append(match.group(1))
        else:
            kept.append(line)
    if removed:
        write_atomic(path, "".join(kept), path.stat().st_mode & 0o777)
    return removed


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _remove_contents(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_data_directory(layout: Layout) -> None:
    """Delete the cluster: the WAL directory and tablespaces it links to, then its contents.

    The (now empty) data directory itself is kept: it may be a mount point, and its
    parent may not be writable.  Callers make sure PostgreSQL is stopped.
    """
    data = layout.data_dir
    if not data.exists() and not data.is_symlink():
        return
    if data.is_symlink() or not data.is_dir():
        raise DataDirectoryError(f"data directory {data} is not a directory: remove it by hand")
    wal = data / "pg_wal"
    if wal.is_symlink() and wal.resolve().is_dir():
        _remove_contents(wal.resolve())
    tblspc = data / "pg_tblspc"
    if tblspc.is_dir():
        for link in tblspc.iterdir():
            target = link.resolve()
            if link.is_symlink() and target.is_dir():
                for version_dir in target.glob("PG_*"):
                    shutil.rmtree(version_dir, ignore_errors=True)
    _remove_contents(data)


def clear_new_directory(path: Path, existed: bool) -> None:
    """Undo a half-made copy/initdb: remove what was made, keep a directory that pre-existed."""
    if existed:
        if path.is_dir():
            _remove_contents(path)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
