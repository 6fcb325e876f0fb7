"""Secure-webhook tokens of Azure Monitor Action Groups: Microsoft Entra access tokens checked against the
tenant's signing keys (from its OpenID Connect metadata), the audience, the issuer and tenant, the
``ActionGroupsSecureWebhook`` app role and the calling application (Azure Monitor's own).

PyJWT is imported on first use, so importing the function app stays cheap.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from handoff.adapters.http import classify, describe, monotonic, safe_url, transport_error
from handoff.domain.errors import ServiceUnavailable, Unauthorized
from handoff.domain.records import AgentCallError
from handoff.settings import Settings

ACTION_GROUPS_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"
SECURE_WEBHOOK_ROLE = "ActionGroupsSecureWebhook"
KEYS_MAX_AGE_SECONDS = 3600.0
REFRESH_AT_MOST_EVERY_SECONDS = 60.0  # on an unknown key id (rotation), but not on every bad token
LEEWAY_SECONDS = 60


class SecureWebhookValidator:
    """Validates ``Authorization: Bearer`` tokens of secure-webhook calls; raises 401 problems."""

    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        if not settings.secure_webhook:
            raise ValueError("secure webhook is not configured (audience and tenant)")
        self.tenant = str(settings.alerts_tenant_id).strip()
        self.audiences = settings.alerts_audiences
        self.metadata_url = safe_url(
            settings.alerts_authority, self.tenant, "v2.0", ".well-known", "openid-configuration"
        )
        self.client = client
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._issuers: set[str] = set()
        self._fetched_at = -1e12

    def validate(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims when every check passes; otherwise :class:`Unauthorized` naming the check."""
        import jwt  # lazy: only secure-webhook requests need it

        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a secure-webhook bearer token is required (Authorization: Bearer ...)")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("the token must be signed with RS256")
        key = self._key(str(header.get("kid", "")))
        if key is None:
            raise Unauthorized("the token is not signed by a key of the configured tenant")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=list(self.audiences),
                options={"require": ["exp", "aud", "iss"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token's audience is not this API (HANDOFF_ALERTS_AUDIENCE)") from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is invalid ({type(exc).__name__})") from None
        if str(claims.get("tid", "")).lower() != self.tenant.lower():
            raise Unauthorized("the token is not from the configured tenant (tid)")
        if claims.get("iss") not in self._accepted_issuers():
            raise Unauthorized("the token's issuer is not the configured tenant (iss)")
        roles = claims.get("roles")
        if not isinstance(roles, list) or SECURE_WEBHOOK_ROLE not in roles:
            raise Unauthorized(f"the token lacks the app role {SECURE_WEBHOOK_ROLE} (roles)")
        caller_app = str(claims.get("azp") or claims.get("appid") or "").lower()
        if caller_app != ACTION_GROUPS_APP_ID:
            raise Unauthorized("the token was not issued to Azure Monitor Action Groups (appid/azp)")
        return claims

    def _accepted_issuers(self) -> set[str]:
        # v1.0 tokens come from sts.windows.net, v2.0 from the authority; the metadata names the latter.
        return {
            f"https://sts.windows.net/{self.tenant}/",
            f"https://login.microsoftonline.com/{self.tenant}/v2.0",
            *self._issuers,
        }

    def _key(self, kid: str) -> Any:
        with self._lock:
            age = monotonic() - self._fetched_at
            if age > KEYS_MAX_AGE_SECONDS or (kid not in self._keys and age > REFRESH_AT_MOST_EVERY_SECONDS):
                self._refresh()
            return self._keys.get(kid)

    def _refresh(self) -> None:
        import jwt

        try:
            metadata = self._get_json(self.metadata_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise AgentCallError("OpenID metadata has no jwks_uri", transient=True)
            if not _same_origin(jwks_uri, self.metadata_url):
                # Only the configured authority is called, never a host a metadata document names.
                raise AgentCallError("OpenID metadata names a jwks_uri on another host", transient=True)
            keys = jwt.PyJWKSet.from_dict(self._get_json(jwks_uri))
        except (AgentCallError, jwt.PyJWTError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, AgentCallError) else type(exc).__name__
            # Without the keys no token can be checked: ask Azure Monitor to retry rather than drop the alert.
            raise ServiceUnavailable(
                f"cannot read the tenant's token signing keys ({reason}); retry later",
                headers={"Retry-After": "10"},
            ) from None
        self._keys = {key.key_id: key.key for key in keys.keys if key.key_id}
        issuer = metadata.get("issuer")
        self._issuers = {issuer} if isinstance(issuer, str) else set()
        self._fetched_at = monotonic()

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self.client.get(url)
        except httpx.HTTPError as exc:
            raise transport_error("GET", url, exc) from None
        if response.status_code != 200:
            raise classify("GET", url, response)
        try:
            data = response.json()
        except ValueError:
            raise AgentCallError(describe("GET", url, response) + " (not JSON)", transient=True) from None
        if not isinstance(data, dict):
            raise AgentCallError(f"GET {url} did not answer a JSON object", transient=True)
        return data


def _same_origin(url: str, other: str) -> bool:
    a, b = httpx.URL(url), httpx.URL(other)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)
