"""The broker's Entra credential: its managed identity in Azure, the developer's identity locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def make_credential(settings: Settings, client_id: str | None = None) -> TokenCredential:
    """``ManagedIdentityCredential`` where a managed identity endpoint exists (Azure, or a local token
    server set through ``IDENTITY_ENDPOINT``), else ``DefaultAzureCredential``."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = client_id or settings.azure_client_id
    if settings.identity_endpoint or settings.website_hostname:
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return (
        DefaultAzureCredential(managed_identity_client_id=client_id)
        if client_id
        else DefaultAzureCredential()
    )
