"""The token endpoint, driven by azure-identity's ManagedIdentityCredential over real HTTP."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from devserver.fakes.identity import (
    DEFAULT_CLIENT_ID,
    DEFAULT_PRINCIPAL_ID,
    DEFAULT_TENANT_ID,
    FakeIdentity,
    InvalidTokenError,
    decode_token,
    mint_token,
    shared_secret,
)

from .conftest import APP_ID_SCOPE, SRE_SCOPE


def test_round_trip_through_azure_identity(stack, credential):
    access = credential.get_token(SRE_SCOPE)
    claims = decode_token(access.token)
    assert claims["aud"] == "https://azuresre.dev"
    assert claims["oid"] == DEFAULT_PRINCIPAL_ID
    assert claims["appid"] == claims["azp"] == DEFAULT_CLIENT_ID
    assert claims["tid"] == DEFAULT_TENANT_ID
    assert claims["iss"] == f"https://sts.windows.net/{DEFAULT_TENANT_ID}/"
    assert claims["iat"] <= time.time() < claims["exp"]
    assert abs(access.expires_on - claims["exp"]) <= 2
    # a standard JWT library verifies it with the shared secret
    verified = jwt.decode(
        access.token, shared_secret(), algorithms=["HS256"], audience="https://azuresre.dev"
    )
    assert verified["oid"] == DEFAULT_PRINCIPAL_ID


def test_what_azure_identity_sends(stack, credential):
    credential.get_token(APP_ID_SCOPE)
    [request] = stack.identity.requests()
    assert request["method"] == "GET"
    assert request["path"] == "/msi/token"
    # the scope's "/.default" suffix is stripped into the App Service "resource" parameter
    assert request["query"] == {
        "api-version": "2019-08-01",
        "resource": "59f0a04a-b322-4310-adc9-39ac41e9631e",
    }
    assert request["headers"]["x-identity-header"] == "***"  # sent, value redacted in the log
    assert request["headers"]["metadata"] == "true"
    [token_request] = stack.identity.token_requests()
    assert token_request["resource"] == "59f0a04a-b322-4310-adc9-39ac41e9631e"
    assert token_request["client_id"] is None
    assert token_request["status"] == 200


def test_azure_identity_caches_tokens_per_credential(stack, credential):
    first = credential.get_token(SRE_SCOPE).token
    assert credential.get_token(SRE_SCOPE).token == first
    assert len(stack.identity.token_requests()) == 1
    ManagedIdentityCredential().get_token(SRE_SCOPE)  # a new credential has its own cache
    assert len(stack.identity.token_requests()) == 2


def test_short_lived_tokens_are_not_cached(monkeypatch):
    # MSAL treats a token with less than five minutes left as expired
    with FakeIdentity(token_lifetime=120) as identity:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", identity.header_secret)
        credential = ManagedIdentityCredential()
        credential.get_token(SRE_SCOPE)
        credential.get_token(SRE_SCOPE)
        assert len(identity.token_requests()) == 2


def test_user_assigned_client_id(stack):
    credential = ManagedIdentityCredential(client_id="11112222-3333-4444-5555-666677778888")
    claims = decode_token(credential.get_token(SRE_SCOPE).token)
    assert claims["appid"] == "11112222-3333-4444-5555-666677778888"
    assert claims["oid"] != DEFAULT_PRINCIPAL_ID
    assert stack.identity.token_requests()[0]["client_id"] == "11112222-3333-4444-5555-666677778888"


def test_unknown_user_assigned_identity_is_refused(monkeypatch):
    with FakeIdentity(user_assigned={"aaaa": "bbbb"}) as identity:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", identity.header_secret)
        assert (
            decode_token(ManagedIdentityCredential(client_id="AAAA").get_token(SRE_SCOPE).token)["oid"]
            == "bbbb"
        )
        with pytest.raises(ClientAuthenticationError):
            ManagedIdentityCredential(client_id="cccc").get_token(SRE_SCOPE)


def test_wrong_identity_header_fails_in_azure_identity(stack, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    with pytest.raises(ClientAuthenticationError, match="X-IDENTITY-HEADER"):
        ManagedIdentityCredential().get_token(SRE_SCOPE)
    assert stack.identity.token_requests()[0]["status"] == 401


def test_protocol_errors(stack, http):
    url = stack.identity_endpoint
    header = {"X-IDENTITY-HEADER": stack.identity_header}
    missing_header = http.get(url, params={"api-version": "2019-08-01", "resource": "https://azuresre.dev"})
    assert missing_header.status_code == 401
    assert missing_header.json()["statusCode"] == 401
    no_resource = http.get(url, params={"api-version": "2019-08-01"}, headers=header)
    assert no_resource.status_code == 400
    assert "resource" in no_resource.json()["message"]
    no_version = http.get(url, params={"resource": "https://azuresre.dev"}, headers=header)
    assert no_version.status_code == 400
    ok = http.get(url, params={"api-version": "2019-08-01", "resource": "https://x"}, headers=header).json()
    assert set(ok) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert ok["token_type"] == "Bearer"
    assert ok["resource"] == "https://x"
    assert isinstance(ok["expires_on"], str)
    assert int(ok["expires_on"]) > time.time()


def test_decode_token_rejects_bad_tokens():
    good = mint_token("https://azuresre.dev")
    assert decode_token(good)["aud"] == "https://azuresre.dev"
    header, _payload, signature = good.split(".")
    tampered = f"{header}.{mint_token('https://management.azure.com').split('.')[1]}.{signature}"
    with pytest.raises(InvalidTokenError, match="signature"):
        decode_token(tampered)
    with pytest.raises(InvalidTokenError, match="signature"):
        decode_token(mint_token("https://azuresre.dev", secret="another-secret"))
    with pytest.raises(InvalidTokenError, match="expired"):
        decode_token(mint_token("https://azuresre.dev", now=time.time() - 7200, lifetime=600))
    with pytest.raises(InvalidTokenError):
        decode_token("not-a-jwt")
    assert decode_token(mint_token("a", secret=b"s"), secret="s")["aud"] == "a"


def test_token_endpoint_faults(stack, http):
    stack.identity.inject("GET", "/msi/token", 500, times=1)
    params = {"api-version": "2019-08-01", "resource": "https://azuresre.dev"}
    headers = {"X-IDENTITY-HEADER": stack.identity_header}
    assert http.get(stack.identity_endpoint, params=params, headers=headers).status_code == 500
    assert http.get(stack.identity_endpoint, params=params, headers=headers).status_code == 200


def test_http_url_is_accepted_by_azure_identity(stack, credential):
    # App Service managed identity has no https requirement: a plain http endpoint works
    assert stack.identity_endpoint.startswith("http://")
    assert credential.get_token(SRE_SCOPE).token


def test_env_carries_secret_for_other_processes(stack):
    env = stack.env()
    assert env["IDENTITY_ENDPOINT"] == stack.identity_endpoint
    assert env["IDENTITY_HEADER"] == stack.identity_header
    assert env["FAKE_IDENTITY_SECRET"].encode() == shared_secret()
    assert httpx.get(env["IDENTITY_ENDPOINT"]).status_code == 401
