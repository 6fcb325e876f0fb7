"""Property: every shared-memory rendering (GitHub Markdown, plain text, Jira ADF) of any hostile
caller text carries exactly one broker marker and none of the caller's markup; in GitHub's, nothing
mentions anyone or references an issue."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devserver.fakes.openapi_check import adf_errors
from handoff.domain.shared_memory.content import (
    ChainStep,
    Note,
    adf,
    adf_text,
    markdown,
    plain_text,
    write_marker,
)
from tests.properties.test_render_properties import hostile
from tests.support.rendering import github_autolinks, headings, links, raw_html, structure_inside_quotes
from tests.unit.test_shared_memory_rendering import HID

text_or_none = st.one_of(st.none(), hostile)


@settings(
    max_examples=120,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    headline=hostile,
    who=hostile,
    outcome=text_or_none,
    summary=text_or_none,
    root_cause=text_or_none,
    actions=st.lists(hostile, max_size=3),
    extra=st.lists(hostile, max_size=2),
    title=hostile,
)
def test_every_rendering_carries_one_marker_and_no_caller_markup(
    headline, who, outcome, summary, root_cause, actions, extra, title
):
    marker = write_marker(HID, "handedBack", 1, "b")
    note_ = Note(
        marker=marker,
        headline=headline,
        what="checkout finished its investigation.",
        who=who,
        outcome=outcome,
        summary=summary,
        root_cause=root_cause,
        actions=tuple(actions),
        links=(("Handoff", f"https://broker/api/handoffs/{HID}"),),
        chain=(ChainStep(HID, "ops", "checkout", "investigate", title, outcome),),
        extra=tuple(extra),
    )
    text = markdown(note_)
    body = text.rsplit("\n\n<!--", 1)[0]
    assert text.lower().count("handoff-memory") == 1 and text.endswith(f"<!-- {marker} -->")
    assert raw_html(body) == [] and structure_inside_quotes(body) == [] and github_autolinks(body) == []
    assert len(headings(body)) == 1 and links(body) == [("Handoff", f"https://broker/api/handoffs/{HID}")]
    plain = plain_text(note_)
    assert plain.lower().count("handoff-memory") == 1 and plain.endswith(f"[{marker}]")
    assert "[code]" not in plain.lower()
    document = adf(note_)
    assert adf_errors(document) == []
    assert adf_text(document).lower().count("handoff-memory") == 1
