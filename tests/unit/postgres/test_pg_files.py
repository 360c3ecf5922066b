"""Files haagent owns, the data directory checks, and the postmaster watch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from haagent.postgres import files
from haagent.postgres.bootstrap import prepare_new_data_dir
from haagent.postgres.errors import ConfigurationError, DataDirectoryError
from haagent.postgres.layout import Layout
from haagent.postgres.watch import PostmasterWatch


def layout(tmp_path: Path, config_dir: str | None = None) -> Layout:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Layout(data, tmp_path / config_dir if config_dir else data, Path("/nonexistent"))


def test_write_atomic_mode_and_no_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    assert files.write_atomic(path, "a\n", 0o600)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not files.write_atomic(path, "a\n", 0o600)  # unchanged: not rewritten
    path.chmod(0o644)
    assert files.write_atomic(path, "a\n", 0o600)  # a wrong mode is fixed
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["pgpass"]


def test_user_conf_is_kept_as_base_conf(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    lay.conf_file.write_text("shared_buffers = 1GB\n")
    assert files.adopt_user_conf(lay) is not None
    assert lay.base_conf.read_text() == "shared_buffers = 1GB\n"
    assert not lay.conf_file.exists()
    # haagent's own file is left for haagent to rewrite.
    lay.conf_file.write_text("# Managed by haagent for member x\n")
    assert files.adopt_user_conf(lay) is None
    # A user's file put back by hand never clobbers the base conf.
    lay.conf_file.write_text("work_mem = 1MB\n")
    note = files.adopt_user_conf(lay)
    assert note is not None and "postgresql.conf.haagent-" in note
    assert lay.base_conf.read_text() == "shared_buffers = 1GB\n"
    backups = list(lay.config_dir.glob("postgresql.conf.haagent-*"))
    assert len(backups) == 1 and backups[0].read_text() == "work_mem = 1MB\n"


def test_separate_config_dir_gets_copies(tmp_path: Path) -> None:
    lay = layout(tmp_path, "etc")
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        (lay.data_dir / name).write_text(f"{name}\n")
    files.adopt_user_conf(lay)
    assert lay.base_conf.read_text() == "postgresql.conf\n"
    assert lay.hba_file.read_text() == "pg_hba.conf\n"
    assert (lay.data_dir / "postgresql.conf").read_text() == "postgresql.conf\n"


def test_standby_signal(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.data_dir / "recovery.signal").write_text("")
    files.set_standby_signal(lay, True)
    assert lay.standby_signal.exists() and not (lay.data_dir / "recovery.signal").exists()
    files.set_standby_signal(lay, False)
    assert not lay.standby_signal.exists()


def test_remove_data_directory_follows_wal_and_tablespaces(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.data_dir / "PG_VERSION").write_text("15\n")
    wal = tmp_path / "wal"
    wal.mkdir()
    (wal / "000000010000000000000001").write_text("x")
    (lay.data_dir / "pg_wal").symlink_to(wal)
    space = tmp_path / "space"
    (space / "PG_15_202209061").mkdir(parents=True)
    (space / "unrelated").write_text("keep")
    (lay.data_dir / "pg_tblspc").mkdir()
    (lay.data_dir / "pg_tblspc" / "16384").symlink_to(space)
    files.remove_data_directory(lay)
    assert lay.data_dir.is_dir() and list(lay.data_dir.iterdir()) == []
    assert wal.is_dir() and list(wal.iterdir()) == []
    assert [p.name for p in space.iterdir()] == ["unrelated"]


def test_prepare_new_data_dir(tmp_path: Path) -> None:
    assert prepare_new_data_dir(tmp_path / "a" / "b") is False
    assert (tmp_path / "a" / "b").is_dir()
    assert prepare_new_data_dir(tmp_path / "a" / "b") is True
    (tmp_path / "a" / "b" / "x").write_text("")
    with pytest.raises(DataDirectoryError, match="not empty"):
        prepare_new_data_dir(tmp_path / "a" / "b")
    (tmp_path / "f").write_text("")
    with pytest.raises(DataDirectoryError, match="not a directory"):
        prepare_new_data_dir(tmp_path / "f")
    files.clear_new_directory(tmp_path / "a" / "b", existed=True)
    assert list((tmp_path / "a" / "b").iterdir()) == []
    files.clear_new_directory(tmp_path / "a" / "b", existed=False)
    assert not (tmp_path / "a" / "b").exists()


def test_binary_error_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"postgresql.bin_dir /nonexistent does not exist"):
        layout(tmp_path).binary("pg_ctl")


@pytest.mark.parametrize("pidfd", [True, False])
async def test_watch_notices_an_exit_at_once(pidfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")
    child = subprocess.Popen(["sleep", "30"])  # noqa: ASYNC220 (a stand-in postmaster)
    exits: list[int] = []
    watch = PostmasterWatch(child.pid, lambda w: exits.append(w.pid))
    assert watch.method == ("pidfd" if pidfd else "polling")
    assert not await watch.wait(0.1)
    killed = time.monotonic()
    child.send_signal(signal.SIGKILL)
    if not pidfd:
        await asyncio.to_thread(child.wait)  # polling sees the pid only once it is reaped
    assert await watch.wait(1.0)
    assert watch.exited_at is not None
    latency = watch.exited_at - killed
    assert latency < (0.05 if pidfd else 0.2)
    assert exits == [child.pid]
    child.wait()


async def test_closed_watch_reports_nothing() -> None:
    child = subprocess.Popen(["sleep", "30"])  # noqa: ASYNC220 (a stand-in postmaster)
    exits: list[int] = []
    watch = PostmasterWatch(child.pid, lambda w: exits.append(w.pid))
    watch.close()
    child.kill()
    child.wait()
    await asyncio.sleep(0.1)
    assert exits == [] and watch.alive()
