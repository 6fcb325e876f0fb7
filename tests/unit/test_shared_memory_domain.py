"""The pure parts of shared memory: which record a handoff names on each backend, the index key of a
record, webhook events read as entries, write keys and queued write messages, and what a note says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from handoff.domain.errors import Unprocessable
from handoff.domain.shared_memory.config import (
    GitHubBackend,
    JiraBackend,
    PagerDutyBackend,
    ServiceNowBackend,
)
from handoff.domain.shared_memory.content import build_note
from handoff.domain.shared_memory.destinations import (
    destination_key,
    github_issue,
    is_shared_record,
    jira_issue,
    known_destination,
    pagerduty_incident,
)
from handoff.domain.shared_memory.human_entries import HumanEntry, entry_time, history_note
from handoff.domain.shared_memory.webhooks import parse_github, parse_pagerduty, read_delivery
from handoff.domain.shared_memory.writes import (
    Destination,
    WriteOrder,
    parse_time,
    parse_write_key,
    write_key,
)
from tests.unit.memory.shared_memory import make_record

H1 = "0b7e4c1e-0000-4000-8000-000000000001"
NOW = datetime(2026, 12, 1, 3, 52, tzinfo=UTC)
GH = GitHubBackend(
    name="gh",
    type="github",
    base_url="https://api.github.com",
    repo="contoso/shop",
    repositories=("contoso/infra",),
    secret_setting="T",
)
PD = PagerDutyBackend(
    name="pd", type="pagerduty", base_url="https://api.pagerduty.com", secret_setting="T", from_email="a@b.co"
)
JIRA = JiraBackend(
    name="j", type="jira", base_url="https://x.atlassian.net", secret_setting="T", project="OPS"
)
SN = ServiceNowBackend(name="sn", type="servicenow", base_url="https://x.service-now.com", secret_setting="T")


def _on(platform: str, reference: str):
    return make_record(H1, incident={"id": reference, "platform": platform})


# ---------------------------------------------------------------- records a handoff names


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("contoso/shop#7", ("contoso/shop", 7)),
        (" contoso/infra#12 ", ("contoso/infra", 12)),
        ("evil/repo#1", None),  # the caller's word never points the token elsewhere
        ("contoso/shop", None),
        ("contoso/shop#x", None),
    ],
)
def test_a_github_reference_is_followed_only_into_configured_repositories(reference, expected):
    assert github_issue(GH, _on("github", reference)) == expected


def test_the_fixed_github_issue_is_used_when_the_handoff_names_none():
    fixed = GH.model_copy(update={"issue": 3})
    assert github_issue(fixed, make_record(H1)) == ("contoso/shop", 3)
    assert github_issue(fixed, _on("github", "evil/repo#1")) == ("contoso/shop", 3)
    assert github_issue(GH, _on("pagerduty", "contoso/shop#7")) is None


@pytest.mark.parametrize(
    ("backend", "record", "expected"),
    [
        (JIRA, _on("jira", "ops-12"), "OPS-12"),
        (JIRA, _on("jira", "SEC-1"), None),  # outside the project
        (JIRA.model_copy(update={"issue": "OPS-1"}), make_record(H1), "OPS-1"),
        (JIRA.model_copy(update={"project": None, "issue": "OPS-1"}), _on("jira", "SEC-1"), "OPS-1"),
        (JIRA.model_copy(update={"project": None}), _on("jira", "SEC-1"), None),
    ],
)
def test_a_jira_key_is_followed_only_inside_the_project(backend, record, expected):
    assert jira_issue(backend, record) == expected


def test_the_pagerduty_incident_comes_from_the_handoff_the_details_or_the_evidence():
    assert pagerduty_incident(_on("pagerduty", " PINC1 "), {}) == "PINC1"
    assert pagerduty_incident(make_record(H1), {"pagerdutyIncidentId": "PALERT"}) == "PALERT"
    custom = [
        {"kind": "data", "title": "alert", "data": {"customProperties": {"pagerdutyIncidentId": "PCUST"}}}
    ]
    assert pagerduty_incident(make_record(H1, evidence=custom), {}) == "PCUST"
    flat = [{"kind": "data", "title": "alert", "data": {"pagerdutyIncidentId": "PFLAT"}}]
    assert pagerduty_incident(make_record(H1, evidence=flat), {}) == "PFLAT"
    assert pagerduty_incident(make_record(H1), {"pagerdutyIncidentId": ""}) is None


@pytest.mark.parametrize(
    ("platform", "data", "key"),
    [
        ("github", {"repo": "Contoso/Shop", "number": 7}, "contoso/shop#7"),
        ("github", {"repo": "contoso/shop"}, None),
        ("pagerduty", {"incident": "PINC1"}, "PINC1"),
        ("jira", {"key": "ops-1"}, "OPS-1"),
        ("servicenow", {"sysId": "ABC"}, "abc"),
        ("servicenow", {}, None),
        ("slack", {"key": "x"}, None),
    ],
)
def test_each_platform_has_one_index_key_per_record(platform, data, key):
    assert destination_key(platform, data) == key


def test_known_destinations_need_no_vendor_call():
    assert known_destination(GH, _on("github", "contoso/shop#7"), {}) == "contoso/shop#7"
    assert known_destination(GH, make_record(H1), {}) is None  # the chain's issue is indexed when written
    assert known_destination(PD, make_record(H1), {"pagerdutyIncidentId": "P1"}) == "P1"
    assert known_destination(PD, make_record(H1), {}) is None
    assert known_destination(JIRA, _on("jira", "OPS-3"), {}) == "OPS-3"
    assert known_destination(JIRA, make_record(H1), {}) is None
    assert known_destination(SN, _on("servicenow", "INC1"), {}) is None


def test_a_fixed_issue_is_a_shared_record():
    assert is_shared_record(GH.model_copy(update={"issue": 3}), "contoso/shop#3")
    assert is_shared_record(JIRA.model_copy(update={"issue": "OPS-1"}), "OPS-1")
    assert not is_shared_record(JIRA, "OPS-1")
    assert not is_shared_record(PD, "PINC1")


# ---------------------------------------------------------------- webhook events


def test_read_delivery_takes_githubs_event_and_delivery_headers():
    data = {
        "action": "created",
        "issue": {"number": 7},
        "comment": {"id": 1, "body": "hi", "user": {"login": "alice"}},
        "repository": {"full_name": "contoso/shop"},
    }
    headers = {"x-github-event": "issue_comment", "x-github-delivery": "d" * 300}
    entry, why = read_delivery(GH, headers, data, NOW)
    assert entry is not None and why == ""
    assert entry.delivery_id == "d" * 100
    assert entry.author_id == "alice"  # no numeric id: the login stands in
    assert entry.at == NOW  # no time in the event
    assert read_delivery(GH, {}, data, NOW) == (None, "event (none) is not read")


@pytest.mark.parametrize(
    "data",
    [
        {"action": "created", "issue": {"number": 7}, "repository": {"full_name": "contoso/shop"}},
        {"action": "created", "issue": {"number": 7}, "comment": {"id": 1}, "repository": {}},
        {
            "action": "created",
            "issue": {"number": "7"},
            "comment": {"id": 1},
            "repository": {"full_name": "a/b"},
        },
        {
            "action": "created",
            "issue": {"number": 7},
            "comment": {"id": ""},
            "repository": {"full_name": "a/b"},
        },
    ],
)
def test_a_github_comment_event_without_its_parts_is_422(data):
    with pytest.raises(Unprocessable):
        parse_github(GH, "issue_comment", "d", data, NOW)


def test_a_github_event_that_is_no_object_is_ignored():
    assert parse_github(GH, "issue_comment", "d", ["x"], NOW) == (None, "only new comments are read")


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"event": "x"},
        {"event": {"event_type": "incident.annotated", "id": "E", "data": {}}},
        {"event": {"event_type": "incident.annotated", "data": {"incident": {"id": "P"}}}},
    ],
)
def test_a_pagerduty_event_without_its_parts_is_422(data):
    with pytest.raises(Unprocessable):
        parse_pagerduty(PD, data, NOW)


def test_a_pagerduty_note_without_its_own_id_takes_the_events():
    data = {"event": {"id": "E1", "event_type": "incident.annotated", "data": {"incident": {"id": "P"}}}}
    entry, _ = read_delivery(PD, {}, data, NOW)
    assert entry is not None
    assert (entry.entry_id, entry.author, entry.text, entry.url) == ("E1", "someone", "", None)


def test_entry_times_read_z_offsets_and_naive_times():
    assert entry_time("2026-12-01T03:52:00Z", NOW) == NOW
    assert entry_time("2026-12-01T04:52:00+01:00", NOW) == NOW
    assert entry_time("2026-12-01T03:52:00", NOW).tzinfo == UTC
    assert entry_time("yesterday", NOW) == NOW
    assert entry_time(None, NOW) == NOW


def test_an_entry_quotes_handoff_ids_in_any_case():
    entry = HumanEntry("gh", "github", "1", "r", "a", "a", NOW, f"see {H1.upper()} and {H1}", None, "d")
    assert entry.quoted_handoff_ids() == {H1}
    assert history_note(entry.payload(False))["text"] == entry.text


# ---------------------------------------------------------------- writes


def test_a_write_key_reads_back():
    key = write_key("handedBack", 12, "ops-notes")
    assert key == "handedBack:12|ops-notes"
    assert parse_write_key(key) == ("handedBack", 12, "ops-notes")
    with pytest.raises(ValueError, match="not enough values"):
        parse_write_key("no separator")


def test_times_read_from_storage_and_queues_are_utc():
    assert parse_time("2026-12-01T03:52:00") == NOW
    assert parse_time(datetime(2026, 12, 1, 3, 52)) == NOW
    plus_one = datetime(2026, 12, 1, 4, 52, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time(plus_one) == NOW
    assert parse_time("") is None and parse_time(None) is None and parse_time("soon") is None


def test_a_queued_write_reads_with_defaults_and_counts_its_attempts():
    order = WriteOrder.read({"handoffId": H1, "backend": "gh", "details": None})
    assert (order.point, order.seq, order.attempt, order.first_at) == ("", 0, 1, None)
    assert order.details() == {}
    assert order.next_attempt() == {"handoffId": H1, "backend": "gh", "details": None, "attempt": 2}


def test_a_destination_reads_its_values_as_text_and_numbers():
    dest = Destination("contoso/shop#7", {"repo": "contoso/shop", "number": "7"})
    assert (dest.text("repo"), dest.number("number")) == ("contoso/shop", 7)
    with pytest.raises(KeyError):
        dest.text("incident")


# ---------------------------------------------------------------- notes


def _note(record, point: str, seq: int = 0, details=None):
    return build_note(
        record,
        point,
        seq,
        "gh",
        base_url="https://broker",
        source_label="Ops",
        target_label="Checkout",
        source_thread_url=None,
        target_thread_url=None,
        chain=(),
        details=details or {},
    )


def test_each_lifecycle_point_has_its_headline():
    record = make_record(H1, handbacks=2, incident={"id": "INC1", "platform": "pagerduty"})
    handed_back = _note(record, "handedBack", 2)
    assert handed_back.headline == "Checkout handed back: root cause found — Checkout errors"
    assert (handed_back.summary, handed_back.root_cause) == ("finding 2", "pool")
    delivered = _note(record, "delivered")
    assert delivered.headline == "Handed off to Checkout — Checkout errors"
    assert delivered.summary == "5xx rate rose to 7% after the deploy" and delivered.outcome is None
    failed = _note(record, "failed", details={"reason": "agent unreachable"})
    assert (failed.outcome, failed.extra[0]) == ("delivery failed", "Reason: agent unreachable")
    resolved = _note(record, "alertResolved")
    assert (resolved.outcome, resolved.summary) == ("alert resolved", "finding 2")
    assert resolved.extra == ("Incident: INC1",)
    assert [label for label, _ in resolved.links] == ["Handoff", "Audit"]


def test_a_resolved_alert_without_hand_backs_has_no_findings():
    note = _note(make_record(H1), "alertResolved")
    assert (note.summary, note.root_cause, note.actions) == (None, None, ())
