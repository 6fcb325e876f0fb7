"""The broker's Entra credential: its managed identity in Azure, the developer's identity locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def make_credential(settings: Settings, client_id: str | None = None) -> TokenCredential:
    """``ManagedIdentityCredential`` where a managed identity endpoint exists (Azure, or a local token
    server set through ``IDENTITY_ENDPOINT``), else ``DefaultAzureCredential``.

    Token requests go to the platform's identity endpoint (loopback in App Service and Functions)
    through azure-identity's own transport, not the broker's egress-checked client: that endpoint is
    set by the platform, never by a caller."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = client_id or settings.azure_client_id
    if settings.identity_endpoint or settings.website_hostname:
        # azure-core waits up to 300 s per connect and read by default; tokens get the broker's timeout.
        return ManagedIdentityCredential(
            client_id=client_id or None,
            connection_timeout=min(10.0, settings.http_timeout_seconds),
            read_timeout=settings.http_timeout_seconds,
        )
    return (
        DefaultAzureCredential(managed_identity_client_id=client_id)
        if client_id
        else DefaultAzureCredential()
    )
