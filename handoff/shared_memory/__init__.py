"""Shared memory: what two agents found, written where people already look (GitHub Issues, PagerDuty,
ServiceNow, Jira). Append-only, exactly-once in effect, and never in the way of a handoff: the service
only enqueues writes; the shared-memory worker performs them with their own retries.
"""
