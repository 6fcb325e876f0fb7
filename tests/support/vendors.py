"""Simulated GitHub, PagerDuty, ServiceNow and Jira for the broker under test, and its shared-memory
configuration (backends used by the ``inventory`` agent; credentials travel in the broker's env)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from devserver.fakes.github import FakeGitHub
from devserver.fakes.jira import FakeJira
from devserver.fakes.pagerduty import FakePagerDuty
from devserver.fakes.servicenow import FakeServiceNow

REPO = "contoso/shop"
POLLED_REPO = "contoso/polled"  # only the polling backend writes here: no other test's issue is polled
POLL_AGENT = "triage"  # handoffs to it are read back by polling alone (no other test hands off to it)
JIRA_ISSUE = "OPS-1"
FROM_EMAIL = "oncall@contoso.com"
GITHUB_TOKEN = "ghp_test_token"
PAGERDUTY_KEY = "pd_test_key"
SERVICENOW_USER = ("handoff.bot", "snow_test_password")
JIRA_USER = ("bot@contoso.com", "jira_test_token")
MEMORY_AGENT = "inventory"
GITHUB_WEBHOOK_SECRET = "gh-webhook-secret-for-tests"
PAGERDUTY_WEBHOOK_SECRET = "pd-webhook-secret-for-tests"
JIRA_WEBHOOK_SECRET = "jira-webhook-secret-for-tests"
SERVICENOW_WEBHOOK_SECRET = "snow-webhook-secret-for-tests"
JIRA_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"  # the broker's account on the simulated Jira

# Credentials the broker reads at use time (app settings named by each backend's secretSetting), and
# timings compressed so retries, spacing and the give-up age run in seconds.
SHARED_MEMORY_ENV = {
    "TEST_GITHUB_TOKEN": GITHUB_TOKEN,
    "TEST_PAGERDUTY_TOKEN": PAGERDUTY_KEY,
    "TEST_SERVICENOW_CREDENTIALS": ":".join(SERVICENOW_USER),
    "TEST_JIRA_CREDENTIALS": ":".join(JIRA_USER),
    "TEST_GITHUB_WEBHOOK_SECRET": GITHUB_WEBHOOK_SECRET,
    "TEST_PAGERDUTY_WEBHOOK_SECRET": PAGERDUTY_WEBHOOK_SECRET,
    "TEST_JIRA_WEBHOOK_SECRET": JIRA_WEBHOOK_SECRET,
    "TEST_SERVICENOW_WEBHOOK_SECRET": SERVICENOW_WEBHOOK_SECRET,
    # Records of active investigations on polling backends are read every second.
    "HANDOFF_HUMAN_POLL_SECONDS": "1",
    "HANDOFF_SHARED_MEMORY_RETRY_BASE_SECONDS": "0.3",
    "HANDOFF_SHARED_MEMORY_RETRY_MAX_SECONDS": "1",
    "HANDOFF_SHARED_MEMORY_MAX_AGE_SECONDS": "8",
    "HANDOFF_SHARED_MEMORY_GITHUB_SPACING_SECONDS": "0.4",
}


@dataclass
class VendorFakes:
    """The four running simulated services."""

    github: FakeGitHub
    pagerduty: FakePagerDuty
    servicenow: FakeServiceNow
    jira: FakeJira

    def all(self) -> list[Any]:
        """Every fake."""
        return [self.github, self.pagerduty, self.servicenow, self.jira]

    def clear_faults(self) -> None:
        """Remove queued faults everywhere."""
        for fake in self.all():
            fake.clear_faults()

    def stop(self) -> None:
        """Stop every server."""
        for fake in self.all():
            fake.stop()


def start_vendor_fakes() -> VendorFakes:
    """Start the four simulated services on free ports."""
    fakes = VendorFakes(
        github=FakeGitHub(tokens=(GITHUB_TOKEN,), repos=(REPO, POLLED_REPO)),
        pagerduty=FakePagerDuty(tokens=(PAGERDUTY_KEY,), users=(FROM_EMAIL,)),
        servicenow=FakeServiceNow(users=(SERVICENOW_USER,)),
        jira=FakeJira(credentials=(JIRA_USER,)),
    )
    try:
        for fake in fakes.all():
            fake.start()
    except BaseException:
        fakes.stop()
        raise
    fakes.jira.add_issue(JIRA_ISSUE)
    return fakes


def shared_memory_config(registry: dict[str, Any], vendors: VendorFakes) -> dict[str, Any]:
    """``registry`` with a ``sharedMemory`` section and the inventory agent writing to every backend."""
    config = copy.deepcopy(registry)
    local = {"allowInsecureLocal": True}
    config["sharedMemory"] = {
        "backends": [
            {
                "name": "gh",
                "type": "github",
                "baseUrl": vendors.github.url,
                "repo": REPO,
                "secretSetting": "TEST_GITHUB_TOKEN",
                "webhookSecretSetting": "TEST_GITHUB_WEBHOOK_SECRET",
                "ownAccount": "handoff-bot",
                **local,
            },
            {
                "name": "pd",
                "type": "pagerduty",
                "baseUrl": vendors.pagerduty.url,
                "fromEmail": FROM_EMAIL,
                "secretSetting": "TEST_PAGERDUTY_TOKEN",
                "webhookSecretSetting": "TEST_PAGERDUTY_WEBHOOK_SECRET",
                **local,
            },
            {
                "name": "snow",
                "type": "servicenow",
                "baseUrl": vendors.servicenow.url,
                "secretSetting": "TEST_SERVICENOW_CREDENTIALS",
                "webhookSecretSetting": "TEST_SERVICENOW_WEBHOOK_SECRET",
                "ownAccount": SERVICENOW_USER[0],
                **local,
            },
            {
                "name": "snow-comments",
                "type": "servicenow",
                "baseUrl": vendors.servicenow.url,
                "field": "comments",
                "secretSetting": "TEST_SERVICENOW_CREDENTIALS",
                **local,
            },
            {
                "name": "jira",
                "type": "jira",
                "baseUrl": vendors.jira.url,
                "project": "OPS",
                "issue": JIRA_ISSUE,
                "secretSetting": "TEST_JIRA_CREDENTIALS",
                "webhookSecretSetting": "TEST_JIRA_WEBHOOK_SECRET",
                "ownAccount": JIRA_ACCOUNT,
                "on": ["handedBack", "failed", "alertResolved"],
                **local,
            },
            # Humans in the loop without webhooks: read back by polling, writing nothing.
            {
                "name": "gh-poll",
                "type": "github",
                "baseUrl": vendors.github.url,
                "repo": POLLED_REPO,
                "secretSetting": "TEST_GITHUB_TOKEN",
                "ownAccount": "handoff-bot",
                "inbound": "poll",
                "on": [],
                **local,
            },
            {
                "name": "pd-poll",
                "type": "pagerduty",
                "baseUrl": vendors.pagerduty.url,
                "fromEmail": FROM_EMAIL,
                "secretSetting": "TEST_PAGERDUTY_TOKEN",
                "inbound": "poll",
                "on": [],
                **local,
            },
        ]
    }
    for agent in config["agents"]:
        if agent["name"] == MEMORY_AGENT:
            agent["sharedMemory"] = ["gh", "pd", "snow", "snow-comments", "jira"]
        if agent["name"] == POLL_AGENT:
            agent["sharedMemory"] = ["gh-poll", "pd-poll"]
    return config
