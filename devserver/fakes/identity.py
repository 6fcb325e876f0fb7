"""A local managed-identity token endpoint speaking the App Service protocol.

azure-identity's ``ManagedIdentityCredential`` (through MSAL) uses this protocol when the
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` environment variables are set::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<aud>[&client_id=<id>]
    X-IDENTITY-HEADER: {IDENTITY_HEADER}
    Metadata: true

    200 {"access_token": "...", "expires_on": "<unix seconds>", "resource": "<aud>",
         "token_type": "Bearer", "client_id": "<client id>"}

Tokens are JWT-shaped and HS256-signed with a secret held by this module, so the other fakes can
verify them with :func:`decode_token`. Fakes in another process get the same secret through the
``FAKE_IDENTITY_SECRET`` environment variable (or a ``secret=`` argument).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, FakeService, HttpError, utc_now

#: environment variable that carries the signing secret to fakes running in other processes
SECRET_ENV = "FAKE_IDENTITY_SECRET"  # noqa: S105 - a variable name, not a secret
#: object id of the simulated system-assigned identity (the ``oid`` claim)
DEFAULT_PRINCIPAL_ID = "5a1c0d3e-7b2f-4c6a-9e8d-1f2a3b4c5d6e"
#: client (application) id of the simulated system-assigned identity (``appid``/``azp``)
DEFAULT_CLIENT_ID = "0c4e8f2a-6b1d-4e3f-a5c7-9d2b4f6a8c1e"
#: tenant of every simulated token
DEFAULT_TENANT_ID = "7d3f9a1b-2c4e-4f6a-8b0d-1e3f5a7c9b2d"
#: lifetime of issued tokens, seconds
DEFAULT_TOKEN_LIFETIME = 3600
SUPPORTED_API_VERSIONS = ("2019-08-01",)

_NAMESPACE = uuid.UUID("3f1d6f0e-8a59-4b7e-9d0c-2b6a4e8f1c3a")
_secret_lock = threading.Lock()
_secret: bytes | None = None


class InvalidTokenError(ValueError):
    """The token is malformed, badly signed, expired, or not for the expected audience."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def shared_secret() -> bytes:
    """The signing secret shared by every fake in this process.

    Taken from ``FAKE_IDENTITY_SECRET`` when set, otherwise random and fixed for the process.
    """
    global _secret
    with _secret_lock:
        if _secret is None:
            from_env = os.environ.get(SECRET_ENV)
            _secret = _as_bytes(from_env) if from_env else secrets.token_urlsafe(32).encode("ascii")
        return _secret


def shared_secret_text() -> str:
    """The shared secret as text, to hand to another process through ``FAKE_IDENTITY_SECRET``."""
    return shared_secret().decode("utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claims(claims: Mapping[str, Any], *, secret: str | bytes | None = None) -> str:
    """Encode ``claims`` as an HS256 JWT signed with ``secret`` (default: the shared secret)."""
    key = _as_bytes(secret) if secret is not None else shared_secret()
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def mint_token(
    audience: str,
    *,
    oid: str = DEFAULT_PRINCIPAL_ID,
    appid: str = DEFAULT_CLIENT_ID,
    tenant_id: str = DEFAULT_TENANT_ID,
    lifetime: int = DEFAULT_TOKEN_LIFETIME,
    secret: str | bytes | None = None,
    now: float | None = None,
    **extra: Any,
) -> str:
    """Issue a token like the token endpoint does (handy to forge other principals in tests)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime),
        "appid": appid,
        "azp": appid,
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": oid,
        "sub": oid,
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(12),
        "ver": "1.0",
    }
    claims.update(extra)
    return sign_claims(claims, secret=secret)


def decode_token(
    token: str,
    *,
    secret: str | bytes | None = None,
    verify_exp: bool = True,
    leeway: int = 60,
) -> dict[str, Any]:
    """Verify an issued token's signature (and expiry) and return its claims.

    Raises :class:`InvalidTokenError` for anything that is not a valid token of the fakes.
    """
    key = _as_bytes(secret) if secret is not None else shared_secret()
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("the token is not a JWT (expected header.payload.signature)")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(signature_b64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidTokenError(f"the token cannot be decoded: {exc}") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise InvalidTokenError("unsupported token header")
    expected = hmac.new(key, f"{header_b64}.{payload_b64}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidTokenError("the token signature is invalid")
    if verify_exp:
        now = time.time()
        if int(claims.get("exp", 0)) + leeway < now:
            raise InvalidTokenError("the token is expired")
        if int(claims.get("nbf", 0)) - leeway > now:
            raise InvalidTokenError("the token is not valid yet")
    return claims


def bearer_claims(
    authorization: str | None,
    audiences: Iterable[str],
    *,
    secret: str | bytes | None = None,
) -> dict[str, Any]:
    """Check an ``Authorization`` header value and return the token claims.

    Raises :class:`InvalidTokenError` when the header is missing, not ``Bearer``, the token is
    invalid, or its ``aud`` is not one of ``audiences`` (exact comparison).
    """
    if not authorization:
        raise InvalidTokenError("the Authorization header is missing")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("the Authorization header is not a Bearer token")
    claims = decode_token(token.strip(), secret=secret)
    accepted = list(audiences)
    if claims.get("aud") not in accepted:
        raise InvalidTokenError(f"the token audience {claims.get('aud')!r} is not one of {accepted}")
    return claims


class FakeIdentity(FakeService):
    """The App Service managed-identity token endpoint (``GET /msi/token``).

    ``user_assigned`` maps user-assigned client ids to their principal (object) ids; when it is
    ``None`` any ``client_id`` is accepted and gets a stable derived principal id, when it is a
    mapping an unknown ``client_id`` is refused with ``400`` as App Service does.
    """

    service_name = "identity"
    token_path = "/msi/token"  # noqa: S105 - a URL path

    def __init__(
        self,
        *,
        header_secret: str | None = None,
        principal_id: str = DEFAULT_PRINCIPAL_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        tenant_id: str = DEFAULT_TENANT_ID,
        user_assigned: Mapping[str, str] | None = None,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        secret: str | bytes | None = None,
    ) -> None:
        super().__init__()
        self.header_secret = header_secret or secrets.token_urlsafe(24)
        self.principal_id = principal_id
        self.client_id = client_id
        self.tenant_id = tenant_id
        self.user_assigned = dict(user_assigned) if user_assigned is not None else None
        self.token_lifetime = token_lifetime
        self.secret = _as_bytes(secret) if secret is not None else shared_secret()
        self._token_requests: list[dict[str, Any]] = []
        self.route("GET", self.token_path, self._token, auth=False)

    @property
    def endpoint(self) -> str:
        """Value for ``IDENTITY_ENDPOINT``."""
        return self.url + self.token_path

    def env(self) -> dict[str, str]:
        """Environment variables that point azure-identity (and other fakes) at this endpoint."""
        return {
            "IDENTITY_ENDPOINT": self.endpoint,
            "IDENTITY_HEADER": self.header_secret,
            SECRET_ENV: self.secret.decode("utf-8"),
        }

    def token_requests(self) -> list[dict[str, Any]]:
        """Token requests answered so far: ``resource``, ``client_id``, ``api_version``, ``status``..."""
        with self.lock:
            return [dict(item) for item in self._token_requests]

    def reset(self) -> None:
        """Forget recorded token requests, faults and requests."""
        with self.lock:
            super().reset()
            self._token_requests.clear()

    def principal_for(self, client_id: str | None) -> tuple[str, str]:
        """(client id, principal id) of the identity selected by ``client_id`` (None: system-assigned)."""
        if not client_id or client_id.lower() == self.client_id.lower():
            return self.client_id, self.principal_id
        if self.user_assigned is None:
            return client_id, str(uuid.uuid5(_NAMESPACE, client_id.lower()))
        for known, principal in self.user_assigned.items():
            if known.lower() == client_id.lower():
                return known, principal
        raise KeyError(client_id)

    def issue(self, resource: str, client_id: str | None = None) -> str:
        """A token as the endpoint would issue it for ``resource``."""
        app, oid = self.principal_for(client_id)
        return mint_token(
            resource,
            oid=oid,
            appid=app,
            tenant_id=self.tenant_id,
            lifetime=self.token_lifetime,
            secret=self.secret,
        )

    @staticmethod
    def _error(status: int, message: str) -> HttpError:
        # App Service answers errors as {"statusCode": ..., "message": ..., "correlationId": ...}
        return HttpError(
            status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
        )

    async def _token(self, call: Call) -> Response:
        record: dict[str, Any] = {
            "time": utc_now(),
            "resource": call.query_value("resource"),
            "client_id": call.query_value("client_id"),
            "mi_res_id": call.query_value("mi_res_id"),
            "object_id": call.query_value("object_id"),
            "api_version": call.query_value("api-version"),
            "status": None,
        }
        try:
            response = self._answer(call, record)
        except HttpError as exc:
            record["status"] = exc.status
            with self.lock:
                self._token_requests.append(record)
            raise
        record["status"] = response.status_code
        with self.lock:
            self._token_requests.append(record)
        return response

    def _answer(self, call: Call, record: dict[str, Any]) -> Response:
        header = call.request.headers.get("x-identity-header")
        if header is None:
            raise self._error(401, "The X-IDENTITY-HEADER request header is missing.")
        if not hmac.compare_digest(header.encode(), self.header_secret.encode()):
            raise self._error(401, "The X-IDENTITY-HEADER request header is invalid.")
        api_version = record["api_version"]
        if not api_version:
            raise self._error(400, "The api-version query parameter is required.")
        if api_version not in SUPPORTED_API_VERSIONS:
            raise self._error(400, f"The api-version '{api_version}' is not supported.")
        resource = record["resource"]
        if not resource:
            raise self._error(400, "The resource query parameter is required.")
        selector = record["client_id"] or record["mi_res_id"] or record["object_id"]
        try:
            client_id, principal_id = self.principal_for(selector)
        except KeyError:
            raise self._error(
                400,
                "No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.",
            ) from None
        issued = int(time.time())
        token = mint_token(
            resource,
            oid=principal_id,
            appid=client_id,
            tenant_id=self.tenant_id,
            lifetime=self.token_lifetime,
            secret=self.secret,
            now=issued,
        )
        return JSONResponse(
            {
                "access_token": token,
                "expires_on": str(issued + self.token_lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )
