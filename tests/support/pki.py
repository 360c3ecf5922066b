"""A throwaway certificate authority for tests, made with `openssl`: server and client certs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(name: str, cwd: Path, passphrase: str | None) -> None:
    args = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    if passphrase is not None:
        args += ["-aes-256-cbc", "-pass", f"pass:{passphrase}"]
    _openssl(*args, "-out", f"{name}.key", cwd=cwd)
    (cwd / f"{name}.key").chmod(0o600)


def make_ca(directory: Path) -> Path:
    """`ca.crt` and `ca.key` in `directory` (created); returns it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _key("ca", directory, None)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=haagent test CA",
             "-out", "ca.crt", cwd=directory)  # fmt: skip
    return directory


def issue(
    directory: Path,
    name: str,
    common_name: str,
    *,
    ips: tuple[str, ...] = (),
    passphrase: str | None = None,
) -> tuple[Path, Path]:
    """`<name>.crt` and `<name>.key` signed by the CA of `directory`; the key encrypted with
    `passphrase` when one is given.  `ips` become subjectAltNames (for verify-full)."""
    _key(name, directory, passphrase)
    key_pass = ["-passin", f"pass:{passphrase}"] if passphrase is not None else []
    _openssl("req", "-new", "-key", f"{name}.key", *key_pass, "-subj", f"/CN={common_name}",
             "-out", f"{name}.csr", cwd=directory)  # fmt: skip
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        + (f"subjectAltName={','.join(f'IP:{ip}' for ip in ips)}\n" if ips else "")
    )
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", extensions.name,
             "-out", f"{name}.crt", cwd=directory)  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"
