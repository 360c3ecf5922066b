"""A small PKI made with `openssl` for TLS tests: a CA, server and client certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def key_and_csr(name: str, cn: str, cwd: Path) -> None:
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={cn}",
        cwd=cwd,
    )


def ca(name: str, cwd: Path) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=cwd,
    )


def sign(name: str, ca: str, extensions: str, cwd: Path) -> None:
    (cwd / f"{name}.ext").write_text(extensions + "\n")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=cwd,
    )


def make_pki(workdir: Path) -> Path:
    """In `workdir`: ca.crt, server.crt/key for 127.0.0.1 (serverAuth), client.crt/key
    (clientAuth), node.crt/key for 127.0.0.1 with both usages, and rogue.crt/key signed
    by another CA (rogue-ca.crt)."""
    ca("ca", workdir)
    ca("rogue-ca", workdir)
    key_and_csr("server", "127.0.0.1", workdir)
    sign("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth", workdir)
    key_and_csr("client", "haactl", workdir)
    sign("client", "ca", "extendedKeyUsage=clientAuth", workdir)
    key_and_csr("node", "127.0.0.1", workdir)
    sign(
        "node",
        "ca",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        workdir,
    )
    key_and_csr("rogue", "haactl", workdir)
    sign("rogue", "rogue-ca", "extendedKeyUsage=clientAuth", workdir)
    key_and_csr("rogue-server", "127.0.0.1", workdir)
    sign(
        "rogue-server",
        "rogue-ca",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        workdir,
    )
    return workdir
