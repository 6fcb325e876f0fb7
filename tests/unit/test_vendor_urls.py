"""Shared-memory writers build vendor URLs with the one URL builder and send through the egress policy.

Incident ids come from callers (``context.incident.id``) and sys_ids from vendor answers; the writers run
for real over the egress transport with an injected resolver and an ``httpx.MockTransport`` vendor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest

from handoff.adapters.egress import EgressPolicy, EgressTransport
from handoff.adapters.github import GitHubWriter
from handoff.adapters.jira import JiraWriter
from handoff.adapters.pagerduty import PagerDutyWriter
from handoff.adapters.servicenow import ServiceNowWriter
from handoff.adapters.vendors import WriterContext, request
from handoff.domain.models import IncidentRef
from handoff.domain.shared_memory.config import (
    GitHubBackend,
    JiraBackend,
    PagerDutyBackend,
    ServiceNowBackend,
)
from handoff.domain.shared_memory.writes import WriteError
from handoff.settings import Settings


class Vendor:
    def __init__(self, body: object) -> None:
        self.body = body
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.body)


def context(vendor: Vendor, address: str = "20.42.65.92") -> WriterContext:
    policy = EgressPolicy(resolver=lambda host, port: [address])
    http = httpx.Client(transport=EgressTransport(policy, inner=lambda: httpx.MockTransport(vendor.handler)))
    return WriterContext(
        http=http,
        settings=Settings.from_env({}),
        state=None,  # type: ignore[arg-type]
        clock=lambda: datetime.now(UTC),
        environ={"TOKEN": "secret"},
    )


def job_for(incident_id: str, platform: str) -> SimpleNamespace:
    incident = IncidentRef(id=incident_id, platform=platform)
    return SimpleNamespace(record=SimpleNamespace(stored=SimpleNamespace(request=SimpleNamespace(
        context=SimpleNamespace(incident=incident, evidence=[])))), details={})  # fmt: skip


def test_a_pagerduty_incident_id_cannot_leave_the_incident_path():
    vendor = Vendor({"notes": []})
    backend = PagerDutyBackend(
        name="pd", type="pagerduty", base_url="https://api.pagerduty.com", secret_setting="TOKEN",
        from_email="oncall@contoso.com",
    )  # fmt: skip
    writer = PagerDutyWriter(backend, context(vendor))
    # Not a PagerDuty incident id: no incident to write to.
    assert writer.destination(job_for("../../users/PABC?x=1#f", "pagerduty")) is None  # type: ignore[arg-type]
    # And any id the writer is given stays one segment of the incident's path.
    writer._notes("../../users/PABC?x=1#f")
    [sent] = vendor.requests
    assert sent.url.raw_path == b"/incidents/..%2F..%2Fusers%2FPABC%3Fx%3D1%23f/notes"
    assert sent.headers["host"] == "api.pagerduty.com"


def test_a_jira_key_stays_one_segment():
    backend = JiraBackend(
        name="j", type="jira", base_url="https://contoso.atlassian.net", secret_setting="TOKEN"
    )
    writer = JiraWriter(backend, context(Vendor({})))
    url = writer._url("SHOP-1/../../../rest/api/3/user?accountId=x")
    assert httpx.URL(url).raw_path == (
        b"/rest/api/3/issue/SHOP-1%2F..%2F..%2F..%2Frest%2Fapi%2F3%2Fuser%3FaccountId%3Dx/comment"
    )


def test_a_github_reference_with_dot_segments_is_a_permanent_failure_before_any_request():
    vendor = Vendor({})
    backend = GitHubBackend(
        name="gh",
        type="github",
        base_url="https://api.github.com",
        secret_setting="TOKEN",
        repo="contoso/shop",
    )
    writer = GitHubWriter(backend.model_copy(update={"repositories": ("../..",)}), context(vendor))
    dest = writer.destination(job_for("../..#1", "github"))  # type: ignore[arg-type]
    assert dest is not None and dest.data["repo"] == "../.."
    with pytest.raises(WriteError) as info:
        writer._exists(dest.data["repo"], 1)
    assert info.value.transient is False and vendor.requests == []


def test_a_github_reference_outside_the_configured_repositories_is_not_followed():
    backend = GitHubBackend(
        name="gh",
        type="github",
        base_url="https://api.github.com",
        secret_setting="TOKEN",
        repo="contoso/shop",
        issue=7,
        repositories=("contoso/payments",),
    )
    writer = GitHubWriter(backend, context(Vendor({})))
    elsewhere = writer.destination(job_for("victim/secret#1", "github"))  # type: ignore[arg-type]
    listed = writer.destination(job_for("Contoso/Payments#3", "github"))  # type: ignore[arg-type]
    assert elsewhere is not None and elsewhere.data == {"repo": "contoso/shop", "number": 7}
    assert listed is not None and listed.data == {"repo": "Contoso/Payments", "number": 3}


def test_a_jira_reference_is_followed_only_inside_the_configured_project():
    from handoff.adapters.jira import JiraWriter
    from handoff.domain.shared_memory.config import JiraBackend

    base = {
        "name": "jira",
        "type": "jira",
        "base_url": "https://contoso.atlassian.net",
        "secret_setting": "T",
    }
    unscoped = JiraWriter(JiraBackend(**base, issue="OPS-1"), context(Vendor({})))
    scoped = JiraWriter(JiraBackend(**base, project="OPS"), context(Vendor({})))
    assert unscoped.destination(job_for("HR-9", "jira")).data == {"key": "OPS-1"}  # type: ignore[arg-type, union-attr]
    assert scoped.destination(job_for("HR-9", "jira")) is None  # type: ignore[arg-type]
    assert scoped.destination(job_for("ops-12", "jira")).data == {"key": "OPS-12"}  # type: ignore[arg-type, union-attr]


def test_a_servicenow_number_cannot_add_conditions_to_the_encoded_query():
    vendor = Vendor({"result": [{"sys_id": "0" * 32}]})
    backend = ServiceNowBackend(
        name="sn", type="servicenow", base_url="https://contoso.service-now.com", secret_setting="TOKEN"
    )
    writer = ServiceNowWriter(backend, context(vendor))
    with pytest.raises(WriteError) as info:
        writer.destination(job_for("INC0010001^ORnumberISNOTEMPTY", "servicenow"))  # type: ignore[arg-type]
    assert info.value.transient is False and vendor.requests == []
    dest = writer.destination(job_for("INC0010001", "servicenow"))  # type: ignore[arg-type]
    assert dest is not None and dest.data["sysId"] == "0" * 32
    assert vendor.requests[0].url.params["sysparm_query"] == "number=INC0010001"


def test_a_vendor_on_a_private_address_is_a_permanent_write_failure():
    vendor = Vendor({})
    with pytest.raises(WriteError, match="private address") as info:
        request(context(vendor, "10.1.2.3").http, "GET", "https://api.github.com/repos/o/r")
    assert info.value.transient is False and vendor.requests == []
