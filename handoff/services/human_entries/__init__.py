"""Humans in the loop: what people answer on the records the broker writes to reaches the agents.

A vendor's webhook (GitHub ``issue_comment``, PagerDuty v3 ``incident.annotated``, Jira
``comment_created``, the ServiceNow business rule's journal entry) arrives at
``POST /api/webhooks/{backendName}``. The request path (:mod:`.intake`) only verifies the signature;
where webhooks cannot be set up, a timer reads the records of active investigations instead
(:mod:`.polling`). Either way the entry goes to :mod:`.claiming`, which deduplicates it
(insert-if-absent per backend and entry id), finds the investigations it belongs to and queues one
``humanEntry`` message per investigation on the delivery queue (:mod:`.fanout`); the delivery worker
posts it into the agents' threads (:mod:`.posting`). :class:`~.inbound.HumanInbound` ties them together.

* **Whose entry.** The broker indexes every record it writes to (and the records a handoff names, when
  it is delivered) as ``destination -> handoff ids``. An entry belongs to the active investigations
  indexed on its record; on a shared record (a backend's fixed ``issue``) only to those whose handoff
  id it quotes. The broker's own entries (written by its ``ownAccount``; without one, ending with its
  ``handoff-memory`` marker line) are never read back; a person's entry that quotes a marker is theirs.
* **What the agents see** and **overrides**: see :mod:`handoff.domain.shared_memory.human_entries`.
"""
