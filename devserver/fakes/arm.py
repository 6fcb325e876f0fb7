"""A fake Azure Resource Manager that answers ``GET`` of ``Microsoft.App/agents`` resources.

``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App/agents/{name}?api-version=...``
returns the resource with ``properties.agentEndpoint`` set to the registered (fake) agent URL. Like
ARM it matches ids case-insensitively, requires ``api-version`` and an ARM-audience bearer token, and
answers errors as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, FakeService, HttpError
from devserver.fakes.identity import InvalidTokenError, bearer_claims

ARM_AUDIENCES: tuple[str, ...] = ("https://management.azure.com", "https://management.azure.com/")
AGENT_API_VERSIONS: tuple[str, ...] = ("2025-05-01-preview", "2026-01-01")
AGENT_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.App/agents/{name}"
)


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HttpError:
    """An ARM-style error response."""
    return HttpError(status, {"error": {"code": code, "message": message}}, headers=headers)


@dataclass
class AgentResource:
    """A registered ``Microsoft.App/agents`` resource."""

    resource_id: str
    agent_endpoint: str
    location: str = "eastus2"
    provisioning_state: str = "Succeeded"
    power_state: str = "Running"

    @property
    def name(self) -> str:
        """Last segment of the resource id."""
        return self.resource_id.rstrip("/").rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        """The resource body as ``GET`` returns it."""
        parts = self.resource_id.strip("/").split("/")
        prefix = "/".join(parts[:4])
        return {
            "id": self.resource_id,
            "name": self.name,
            "type": "Microsoft.App/agents",
            "location": self.location,
            "identity": {
                "type": "SystemAssigned, UserAssigned",
                "userAssignedIdentities": {
                    f"/{prefix}/providers/Microsoft.ManagedIdentity"
                    f"/userAssignedIdentities/uami-{self.name}": {}
                },
            },
            "properties": {
                "provisioningState": self.provisioning_state,
                "powerState": self.power_state,
                "agentEndpoint": self.agent_endpoint,
                "outboundIpAddresses": ["127.0.0.1"],
                "actionConfiguration": {"mode": "Review", "accessLevel": "Low"},
                "experimentalSettings": {"EnableHttpTriggers": True},
            },
        }


class FakeArm(FakeService):
    """The ARM endpoint for agent resources.

    ``register(resource_id, agent_endpoint)`` adds a resource; ``request_count`` counts agent GETs
    (answered or refused) so tests can check that endpoints are cached.
    """

    service_name = "arm"

    def __init__(
        self,
        *,
        audiences: Iterable[str] = ARM_AUDIENCES,
        api_versions: Iterable[str] = AGENT_API_VERSIONS,
        secret: str | bytes | None = None,
    ) -> None:
        super().__init__()
        self.audiences = tuple(audiences)
        self.api_versions = tuple(api_versions)
        self.secret = secret
        self._resources: dict[str, AgentResource] = {}
        self.route("GET", AGENT_PATH, self._get_agent)
        self.route("GET", "/_fake/resources", self._ctl_resources, control=True)
        self.route("POST", "/_fake/resources", self._ctl_register, control=True)

    def register(self, resource_id: str, agent_endpoint: str, *, location: str = "eastus2") -> AgentResource:
        """Add (or replace) an agent resource whose ``agentEndpoint`` is ``agent_endpoint``."""
        resource = AgentResource(resource_id=resource_id, agent_endpoint=agent_endpoint, location=location)
        with self.lock:
            self._resources[resource_id.lower().rstrip("/")] = resource
        return resource

    def unregister(self, resource_id: str) -> None:
        """Remove a resource (later GETs answer 404)."""
        with self.lock:
            self._resources.pop(resource_id.lower().rstrip("/"), None)

    def resources(self) -> list[dict[str, Any]]:
        """Registered resource bodies."""
        with self.lock:
            return [resource.to_json() for resource in self._resources.values()]

    @property
    def request_count(self) -> int:
        """Agent GET requests received (answered, refused or faulted) since start or the last reset."""
        return len(self.requests("GET", AGENT_PATH))

    def reset(self) -> None:
        """Clear recorded requests (and so the request count) and faults; registrations stay."""
        super().reset()

    def authenticate(self, call: Call) -> dict[str, Any]:
        """ARM checks the token before anything else."""
        header = call.request.headers.get("authorization")
        if not header:
            raise arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"'},
            )
        try:
            return bearer_claims(header, self.audiences, secret=self.secret)
        except InvalidTokenError as exc:
            code = (
                "InvalidAuthenticationTokenAudience"
                if "audience" in str(exc)
                else "InvalidAuthenticationToken"
            )
            raise arm_error(
                401,
                code,
                f"The access token is invalid: {exc}.",
                {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc}"'},
            ) from None

    def not_found_body(self, call: Call) -> Any:
        """ARM's answer for paths it has no route for."""
        return {
            "error": {
                "code": "InvalidResourceType",
                "message": f"The resource type could not be found for path '{call.request.url.path}'.",
            }
        }

    async def _get_agent(self, call: Call) -> Response:
        api_version = call.query_value("api-version")
        if not api_version:
            raise arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if api_version not in self.api_versions:
            raise arm_error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'eastus2' and API version "
                f"'{api_version}' for type 'agents'. The supported api-versions are "
                f"'{', '.join(self.api_versions)}'.",
            )
        key = call.request.url.path.lower().rstrip("/")
        with self.lock:
            resource = self._resources.get(key)
            body = resource.to_json() if resource else None
        if body is None:
            params = call.params
            raise arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.App/agents/{params['name']}' under resource group "
                f"'{params['resource_group']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return JSONResponse(body)

    async def _ctl_resources(self, call: Call) -> Response:
        return JSONResponse({"value": self.resources()})

    async def _ctl_register(self, call: Call) -> Response:
        data = call.json()
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key), str) for key in ("resourceId", "agentEndpoint")
        ):
            raise arm_error(400, "BadRequest", "Body must be {'resourceId': str, 'agentEndpoint': str}.")
        resource = self.register(data["resourceId"], data["agentEndpoint"])
        return JSONResponse(resource.to_json(), 201)
