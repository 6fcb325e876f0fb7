"""The evidence of an alert handoff, mapped from the alert's ``alertContext`` by kind of alert."""
