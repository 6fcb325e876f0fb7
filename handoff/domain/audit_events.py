"""The names of audit events and of the broker's own actor, spelled once.

Stored values are these strings exactly (a :class:`~enum.StrEnum` member *is* its string), so records
written before and after read the same.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every type of event in a handoff's audit (and of the alert log, at the end)."""

    # intake
    ACCEPTED = "accepted"
    CHAIN_REFUSED = "chainRefused"
    # delivery into the target agent's thread (or to an A2A peer)
    DELIVERY_ATTEMPT = "deliveryAttempt"
    DELIVERY_RECOVERED = "deliveryRecovered"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "deliveryFailed"
    # the cross-link into the source thread
    CROSS_LINKED = "crossLinked"
    CROSS_LINK_FAILED = "crossLinkFailed"
    # hand-backs
    HAND_BACK_RECEIVED = "handBackReceived"
    HANDED_BACK = "handedBack"
    HAND_BACK_FAILED = "handBackFailed"
    # retries, the sweeper and operators
    RETRY_SCHEDULED = "retryScheduled"
    REDELIVERY_SCHEDULED = "redeliveryScheduled"
    RETRY_REQUESTED = "retryRequested"
    WORK_REJECTED = "workRejected"
    # A2A tasks
    REMOTE_TASK_STATE = "remoteTaskState"
    REMOTE_INPUT_REQUIRED = "remoteInputRequired"
    REMOTE_FAILED = "remoteFailed"
    REMOTE_REJECTED = "remoteRejected"
    REMOTE_CANCELED = "remoteCanceled"
    # the automatic hand-back watch
    WATCH_STARTED = "watchStarted"
    WATCH_ENDED = "watchEnded"
    WATCH_EXPIRED = "watchExpired"
    WATCH_STOPPED = "watchStopped"
    REPLY_COMPLETE = "replyComplete"
    # alerts
    ALERT_FIRED = "alertFired"
    ALERT_JOINED_STORM = "alertJoinedStorm"
    ALERT_REFIRED = "alertRefired"
    ALERT_RESOLVED = "alertResolved"
    ALERT_RESOLVED_AGAIN = "alertResolvedAgain"
    ALERT_NOTE_POSTED = "alertNotePosted"
    ALERT_NOTE_FAILED = "alertNoteFailed"
    ALERT_RESOLVED_POSTED = "alertResolvedPosted"
    # humans in the loop
    HUMAN_NOTE = "humanNote"
    HUMAN_OVERRIDE = "humanOverride"
    HUMAN_ENTRY_POSTED = "humanEntryPosted"
    HUMAN_ENTRY_FAILED = "humanEntryFailed"
    # shared memory
    SHARED_MEMORY_QUEUED = "sharedMemoryQueued"
    SHARED_MEMORY_SKIPPED = "sharedMemorySkipped"
    SHARED_MEMORY_ATTEMPT = "sharedMemoryAttempt"
    SHARED_MEMORY_WRITTEN = "sharedMemoryWritten"
    SHARED_MEMORY_WARNING = "sharedMemoryWarning"
    SHARED_MEMORY_RETRY_SCHEDULED = "sharedMemoryRetryScheduled"
    SHARED_MEMORY_FAILED = "sharedMemoryFailed"
    SHARED_MEMORY_REQUEUED = "sharedMemoryRequeued"
    SHARED_MEMORY_REPLAY_SCHEDULED = "sharedMemoryReplayScheduled"
    # the alert log (alerts that have no handoff)
    ALERT_UNROUTED = "unrouted"
    ALERT_RESOLVED_UNKNOWN = "resolvedUnknown"


class Actor(StrEnum):
    """Who the audit names when the broker acts on its own."""

    # The queue worker: deliveries, posts, retries, give-ups.
    BROKER = "broker"
    # The sweeper and handoffs the broker starts (alerts): the ``system`` caller's label.
    SYSTEM = "system"
