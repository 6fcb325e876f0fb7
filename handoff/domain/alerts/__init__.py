"""Azure Monitor alerts (common alert schema), as pure code: no storage, no SDK.

:mod:`.parsing` reads a webhook body into an :class:`~.parsing.Alert`, :mod:`.routing` picks its alert
route, :mod:`.storms` decides whether it gets its own handoff or joins the target's storm handoff,
:mod:`.context` (with the kind-specific mappings in :mod:`.evidence`) builds the handoff's context,
:mod:`.notes` writes the texts posted into the target's thread, :mod:`.records` holds the stored rows
and :mod:`.receipt` the answer. The use cases that run them are in :mod:`handoff.services.alert_intake`
and :mod:`handoff.services.alert_notes`.
"""
