"""Basic auth (401), the allowlist (403), and TLS with client certificates made by `openssl`."""

from __future__ import annotations

import base64
import logging
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from haagent.api.auth import TlsSettingsError
from haagent.config.model import Credentials, RestApiSettings
from haagent_lab.fake_api import ApiClient, primary_status
from support.api_pki import key_and_csr, make_pki, sign

StartApi = Any  # the start_api fixture (tests/integration/api/conftest.py)

PASSWORD = "pa55-w0rd-never-logged"
AUTH = RestApiSettings(authentication=Credentials("admin", PASSWORD))


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_changing_endpoints_need_basic_auth(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = await start_api(primary_status(), AUTH)
    for headers in ({}, _basic("admin", "wrong"), _basic("root", PASSWORD)):
        got = await api.call("POST", "/reload", headers=headers)
        assert got.status == 401
        assert got.headers["WWW-Authenticate"] == 'Basic realm="haagent"'
    got = await api.call("POST", "/reload", headers=_basic("admin", PASSWORD))
    assert got.status == 200
    got = await api.call("PATCH", "/config", json={"ttl": 20}, headers=_basic("admin", PASSWORD))
    assert got.status == 200
    assert (await api.call("DELETE", "/switchover")).status == 401
    # the read endpoints stay open: HAProxy does not authenticate
    assert (await api.call("GET", "/primary")).status == 200
    assert (await api.call("OPTIONS", "/replica")).status == 503
    assert (await api.call("GET", "/cluster")).status == 200
    assert PASSWORD not in caplog.text
    assert base64.b64encode(f"admin:{PASSWORD}".encode()).decode() not in caplog.text
    assert "restapi.authentication is not set" not in caplog.text


async def test_no_authentication_is_warned_about_at_start(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="haagent.api")
    api = await start_api(primary_status())
    assert "restapi.authentication is not set" in caplog.text
    assert (await api.call("POST", "/reload")).status == 200


@pytest.mark.parametrize(
    ("allowlist", "code"),
    [
        (("10.0.0.0/8",), 403),
        (("192.168.1.7",), 403),
        (("127.0.0.1",), 200),
        (("10.0.0.0/8", "127.0.0.0/8"), 200),
        (("localhost",), 200),
    ],
)
async def test_allowlist(start_api: StartApi, allowlist: tuple[str, ...], code: int) -> None:
    api = await start_api(primary_status(), RestApiSettings(allowlist=allowlist))
    got = await api.call("POST", "/restart", json={})
    assert got.status == code
    if code == 403:
        assert api.controller.requests == []
    # health checks are not subject to the allowlist
    assert (await api.call("GET", "/primary")).status == 200


async def test_allowlist_is_checked_before_auth(start_api: StartApi) -> None:
    settings = RestApiSettings(
        authentication=Credentials("admin", PASSWORD), allowlist=("10.0.0.1",)
    )
    api = await start_api(primary_status(), settings)
    got = await api.call("POST", "/reload", headers=_basic("admin", PASSWORD))
    assert got.status == 403


async def test_allowlist_include_members(start_api: StartApi) -> None:
    settings = RestApiSettings(allowlist=("10.0.0.0/8",), allowlist_include_members=True)
    api = await start_api(primary_status(), settings)
    # node2's api_url host is 127.0.0.12
    assert (await api.call("POST", "/reload", local_host="127.0.0.12")).status == 200
    assert (await api.call("POST", "/reload", local_host="127.0.0.99")).status == 403


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture
def pki(workdir: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a rogue one."""
    return make_pki(workdir)


def _tls_settings(pki: Path, verify_client: str) -> RestApiSettings:
    return RestApiSettings(
        certfile=pki / "server.crt",
        keyfile=pki / "server.key",
        cafile=pki / "ca.crt",
        verify_client=verify_client,  # type: ignore[arg-type]
    )


def _client(pki: Path, cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    return context


async def _refused(api: Any, method: str, path: str, context: ssl.SSLContext) -> bool:
    try:
        await api.call(method, path, ssl_context=context)
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return True
    return False


async def test_tls_client_certificate_required(start_api: StartApi, pki: Path) -> None:
    api = await start_api(primary_status(), _tls_settings(pki, "required"))
    assert api.base.startswith("https://")
    with_cert = _client(pki, "client")
    assert (await api.call("GET", "/primary", ssl_context=with_cert)).status == 200
    assert (await api.call("POST", "/reload", ssl_context=with_cert)).status == 200
    assert await _refused(api, "GET", "/primary", _client(pki, None))
    assert await _refused(api, "POST", "/reload", _client(pki, "rogue"))
    assert len(api.controller.requests) == 1


async def test_tls_client_certificate_optional(start_api: StartApi, pki: Path) -> None:
    api = await start_api(primary_status(), _tls_settings(pki, "optional"))
    no_cert = _client(pki, None)
    assert (await api.call("GET", "/primary", ssl_context=no_cert)).status == 200
    got = await api.call("POST", "/reload", ssl_context=no_cert)
    assert got.status == 403 and "client certificate required" in got.text
    assert (await api.call("POST", "/reload", ssl_context=_client(pki, "client"))).status == 200
    assert await _refused(api, "POST", "/reload", _client(pki, "rogue"))


async def test_tls_without_client_verification(start_api: StartApi, pki: Path) -> None:
    api = await start_api(primary_status(), _tls_settings(pki, "none"))
    no_cert = _client(pki, None)
    assert (await api.call("OPTIONS", "/primary", ssl_context=no_cert)).status == 200
    assert (await api.call("POST", "/reload", ssl_context=no_cert)).status == 200
    plain = ApiClient(api.base.replace("https://", "http://"))
    with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port
        await plain.call("GET", "/primary")


async def test_tls_settings_errors(start_api: StartApi, pki: Path) -> None:
    settings = RestApiSettings(certfile=pki / "server.crt", keyfile=pki / "server.key",
                               verify_client="required")  # fmt: skip
    with pytest.raises(TlsSettingsError, match="cafile"):
        await start_api(primary_status(), settings)
    broken = RestApiSettings(certfile=pki / "server.crt", keyfile=pki / "client.key")
    with pytest.raises(TlsSettingsError, match="keyfile"):
        await start_api(primary_status(), broken)


# -- reconfigure (reload) ----------------------------------------------------------------


async def test_reconfigure_auth_and_allowlist_in_place(start_api: StartApi) -> None:
    api = await start_api(primary_status())
    port = api.server.port
    assert (await api.call("POST", "/reload")).status == 200
    listen = api.server.settings.listen
    await api.server.reconfigure(replace(AUTH, listen=listen))
    assert api.server.port == port
    assert (await api.call("POST", "/reload")).status == 401
    assert (await api.call("POST", "/reload", headers=_basic("admin", PASSWORD))).status == 200
    await api.server.reconfigure(replace(AUTH, listen=listen, allowlist=("10.0.0.0/8",)))
    assert (await api.call("POST", "/reload", headers=_basic("admin", PASSWORD))).status == 403
    assert (await api.call("GET", "/primary")).status == 200


async def test_reconfigure_switches_to_tls_and_rotates_certificates(
    start_api: StartApi, pki: Path
) -> None:
    api = await start_api(primary_status())
    listen = api.server.settings.listen
    await api.server.reconfigure(replace(_tls_settings(pki, "none"), listen=listen))
    https = ApiClient(f"https://127.0.0.1:{api.server.port}", _client(pki, None))
    assert (await https.call("GET", "/primary")).status == 200
    # rotate: the same paths now hold a certificate from another CA
    key_and_csr("server", "127.0.0.1", pki)
    sign("server", "rogue-ca", "subjectAltName=IP:127.0.0.1", pki)
    await api.server.reconfigure(replace(_tls_settings(pki, "none"), listen=listen))
    trusts_rogue = ssl.create_default_context(cafile=str(pki / "rogue-ca.crt"))
    assert (await https.call("GET", "/primary", ssl_context=trusts_rogue)).status == 200
    assert await _refused(https, "GET", "/primary", _client(pki, None))


async def test_reconfigure_with_bad_tls_keeps_serving(start_api: StartApi, pki: Path) -> None:
    api = await start_api(primary_status())
    bad = replace(_tls_settings(pki, "required"), cafile=None, listen=api.server.settings.listen)
    with pytest.raises(TlsSettingsError):
        await api.server.reconfigure(bad)
    assert (await api.call("GET", "/primary")).status == 200
