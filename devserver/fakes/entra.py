"""A simulated Microsoft Entra authority for secure-webhook tokens: OpenID Connect metadata and signing keys.

Serves what a token receiver reads, in the shapes Entra uses:

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` → ``issuer``, ``jwks_uri``, ...
* ``GET /{tenant}/discovery/v2.0/keys`` → ``{"keys": [RSA JWKs with kid, n, e]}``

Unknown tenants get ``400`` with an ``invalid_tenant`` error, as Entra answers. :meth:`FakeEntra.mint`
signs tokens with the tenant's RS256 key; :meth:`FakeEntra.secure_webhook_token` builds the app-only token
Azure Monitor Action Groups send (``roles: [ActionGroupsSecureWebhook]``, ``appid`` of Azure Monitor).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, FakeService, HttpError
from devserver.fakes.identity import DEFAULT_TENANT_ID

ACTION_GROUPS_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"
SECURE_WEBHOOK_ROLE = "ActionGroupsSecureWebhook"


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeEntra(FakeService):
    """OpenID Connect metadata and JWKS of one tenant, and a signer for its tokens."""

    service_name = "entra"

    def __init__(self, tenant_id: str = DEFAULT_TENANT_ID) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.kid = secrets.token_urlsafe(12)
        self.private_key = new_rsa_key()
        self.route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self._metadata, auth=False)
        self.route("GET", "/{tenant}/discovery/v2.0/keys", self._keys, auth=False)

    @property
    def authority(self) -> str:
        """Value for ``HANDOFF_ALERTS_AUTHORITY`` (stands in for https://login.microsoftonline.com)."""
        return self.url

    @property
    def issuer_v1(self) -> str:
        """``iss`` of v1.0 access tokens."""
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def issuer_v2(self) -> str:
        """``iss`` of v2.0 access tokens (also the metadata's ``issuer``)."""
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0"

    def _tenant(self, call: Call) -> None:
        if call.params["tenant"].lower() != self.tenant_id.lower():
            raise HttpError(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{call.params['tenant']}' not found.",
                    "error_codes": [90002],
                    "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                    "trace_id": str(uuid.uuid4()),
                    "correlation_id": str(uuid.uuid4()),
                },
            )

    async def _metadata(self, call: Call) -> Response:
        self._tenant(call)
        base = f"{self.url}/{self.tenant_id}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "issuer": self.issuer_v2,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "tenant_region_scope": "EU",
            }
        )

    async def _keys(self, call: Call) -> Response:
        self._tenant(call)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return JSONResponse({"keys": [jwk]})

    def mint(
        self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None
    ) -> str:
        """Sign ``claims`` with RS256 (the tenant's key unless ``key`` is given)."""
        return jwt.encode(
            claims, key or self.private_key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    def secure_webhook_token(
        self,
        audience: str,
        *,
        roles: tuple[str, ...] = (SECURE_WEBHOOK_ROLE,),
        appid: str = ACTION_GROUPS_APP_ID,
        version: str = "1.0",
        lifetime: int = 3600,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **extra: Any,
    ) -> str:
        """The app-only token Action Groups send to a secure webhook (v1.0 by default, like Entra's)."""
        now = int(time.time())
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, appid))
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer_v1 if version == "1.0" else self.issuer_v2,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "oid": oid,
            "sub": oid,
            "tid": self.tenant_id,
            "idtyp": "app",
            "ver": version,
            "uti": secrets.token_urlsafe(12),
        }
        claims["appid" if version == "1.0" else "azp"] = appid
        if roles:
            claims["roles"] = list(roles)
        claims.update(extra)
        return self.mint(claims, key=key, kid=kid)
