"""Property tests of redaction with invisible characters: for any text built from the corpus secrets (in
the text they turn up in, or alone when their shape names them), ordinary words and characters the
rendering removes, no secret that reading the text as written or as shown finds is shown once the
result is rendered, and redacting the result again changes nothing.

The search is derandomized and bounded, so a run is reproducible and takes a few seconds.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from handoff.domain.markdown import strip_invisible
from handoff.domain.redaction import redact, redact_text
from handoff.domain.redaction.text import _redact
from tests.data.secret_corpus import LOOK_ALIKES, SECRETS

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Characters the rendering removes: zero-width space, joiner and no-break, the soft hyphen, NUL, the
# BOM, a bidi override, a tag character.
INVISIBLE = ["\u200b", "\u200d", "\u2060", "\u00ad", "\x00", "\ufeff", "\u202e", "\U000e0041"]
# Secrets whose shape alone names them (a token prefix): they are caught in any text, not only their own.
NAMED_BY_SHAPE = sorted({case.value for case in SECRETS if redact(case.value) != case.value})
WORDS = ["x", "y", "build", "and", "see", "deploy", "password=", "password=y", "token: ", "0x1F", "ok."]
SEPARATORS = ["", " ", "\n", " and ", "; ", *INVISIBLE, " \u200b", "\u200b "]
GITHUB = next(case.value for case in SECRETS if case.kind == "github_token" and case.value.startswith("ghp_"))


@st.composite
def _split(draw: st.DrawFn, value: str) -> str:
    """``value`` with invisible characters at some of its positions (none, often)."""
    at = draw(st.lists(st.integers(0, len(value)), max_size=3, unique=True))
    for position in sorted(at, reverse=True):
        value = value[:position] + draw(st.sampled_from(INVISIBLE)) + value[position:]
    return value


@st.composite
def _piece(draw: st.DrawFn) -> tuple[str, str | None]:
    """A piece of text and the corpus secret it holds, if any."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        case = draw(st.sampled_from(SECRETS))
        return case.text.replace(case.value, draw(_split(case.value))), case.value
    if choice == 1:
        value = draw(st.sampled_from(NAMED_BY_SHAPE))
        return draw(_split(value)), value
    if choice == 2:
        return draw(st.sampled_from(LOOK_ALIKES)), None
    return draw(st.sampled_from(WORDS)), None


@st.composite
def _texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text of a few pieces, each after a separator (nothing, a space, an invisible character ...)."""
    pieces = draw(st.lists(_piece(), min_size=1, max_size=6))
    text = "".join(draw(st.sampled_from(SEPARATORS)) + piece for piece, _ in pieces)
    return text, [value for _, value in pieces if value is not None]


def _shown(text: str) -> str:
    return strip_invisible(text)


@pytest.mark.attack("redaction")
@PROPERTY_SETTINGS
@given(_texts())
# A token set apart from a word by an invisible character, and the same token after a password that an
# invisible character splits from it: the token alone, and the password with it, must both be cut.
@example((f"x\u200b{GITHUB} and password=y\u200b{GITHUB}", [GITHUB]))
# The same token twice: visible as written, and split so that only the text as shown has it.
@example((f"{GITHUB} and {GITHUB[:10]}\u200b{GITHUB[10:]}", [GITHUB]))
def test_no_secret_either_reading_finds_is_shown_and_redacting_again_changes_nothing(built):
    text, values = built
    out, counts = redact_text(text)

    as_written = _shown(_redact(text)[0])  # the rules applied once to the text as written
    as_shown = redact(_shown(text))  # ... and to the text as a reader sees it
    for value in {value for secret in values for value in (secret, _shown(secret))}:
        if value not in as_written or value not in as_shown:
            assert value not in _shown(out), (value, text, out)
    assert redact_text(out) == (out, {})
    assert bool(counts) == (out != text)


# Pieces without invisible characters, run together or apart: corpus texts and secrets, and the starts of
# texts whose secret runs on into whatever follows (a signature's hex digits, a label).
VISIBLE_TEXTS = [case.text for case in SECRETS if _shown(case.text) == case.text]
RUNS_ON = ["X-Amz-Signature=" + "0a" * 32, "X-Goog-Signature=" + "f" * 40, "sig=", "password=", "token: "]


@st.composite
def _visible_texts(draw: st.DrawFn) -> str:
    """A text of a few corpus texts, secrets, words and open-ended starts, often with nothing between."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(VISIBLE_TEXTS),
                st.sampled_from(NAMED_BY_SHAPE),
                st.sampled_from(RUNS_ON),
                st.sampled_from(WORDS),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return "".join(draw(st.sampled_from(["", "", " ", "\n", "; "])) + piece for piece in pieces)


@pytest.mark.attack("redaction")
@PROPERTY_SETTINGS
@given(_visible_texts())
@example("X-Amz-Signature=" + "0a" * 32 + GITHUB)
def test_redacting_a_text_without_invisible_characters_again_changes_nothing(text):
    assert _shown(text) == text
    out, counts = redact_text(text)

    assert redact_text(out) == (out, {}), (text, out)
    assert bool(counts) == (out != text)
