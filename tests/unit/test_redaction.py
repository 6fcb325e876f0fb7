"""Secret redaction: the corpus (every fake secret caught with its kind, no look-alike touched), JSON
values and wire models, and the places that apply it without I/O (problems, error texts)."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest

from handoff.adapters.http import classify, describe
from handoff.domain.errors import FieldError, NotFound, Unprocessable, single_field
from handoff.domain.markdown import LINE_BREAKS, lines_of, single_line, strip_invisible
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import AgentCallError
from handoff.domain.redaction import (
    HANDBACK_TEXT_FIELDS,
    HANDOFF_TEXT_FIELDS,
    RULES,
    is_placeholder,
    marker,
    redact,
    redact_json,
    redact_model,
    redact_text,
    secret_name_kind,
)
from handoff.domain.redaction import text as engine
from handoff.domain.shared_memory.writes import WriteError
from tests.data import secret_corpus
from tests.data.secret_corpus import LOOK_ALIKES, SECRETS

# ---------------------------------------------------------------- the corpus


@pytest.mark.parametrize("case", SECRETS, ids=[f"{c.kind}-{i}" for i, c in enumerate(SECRETS)])
def test_every_secret_is_replaced_and_counted_as_its_kind(case):
    out, counts = redact_text(case.text)

    assert case.value not in out
    assert counts.get(case.kind, 0) >= 1, counts
    assert marker(case.kind) in out or case.kind == "private_key"
    for part in case.keep:
        assert part in out, f"lost {part!r}: {out}"


@pytest.mark.parametrize("text", LOOK_ALIKES, ids=[f"look-alike-{i}" for i in range(len(LOOK_ALIKES))])
def test_look_alikes_come_through_unchanged(text):
    assert redact_text(text) == (text, {})


def test_corpus_figures(security_figures):
    result = secret_corpus.figures()
    security_figures.update(
        {
            "redaction corpus secrets": result.secrets,
            "redaction corpus secrets caught": result.caught,
            "redaction corpus secrets missed": len(result.missed),
            "redaction corpus look-alikes": result.look_alikes,
            "redaction corpus look-alikes changed": len(result.changed),
        }
    )
    assert result.secrets >= 60 and result.look_alikes >= 60
    assert len({case.kind for case in SECRETS}) >= 20
    assert (result.missed, result.wrong_kind, result.changed) == ([], [], [])


def test_every_rule_has_a_secret_in_the_corpus():
    kinds = {case.kind for case in SECRETS}
    rule_kinds = {rule.kind for rule in RULES if isinstance(rule.kind, str)}
    assert rule_kinds <= kinds
    assert {"password", "secret", "client_secret", "token", "api_key"} <= kinds  # the key/value rule


def test_redacting_twice_changes_nothing_more():
    for case in SECRETS:
        once = redact(case.text)
        assert redact_text(once) == (once, {})


def test_all_secrets_in_one_text_are_counted_per_kind():
    text = "\n".join(case.text for case in SECRETS)
    out, counts = redact_text(text)

    assert not [case.kind for case in SECRETS if case.value in out]
    expected: dict[str, int] = {}
    for case in SECRETS:
        expected[case.kind] = expected.get(case.kind, 0) + 1
    assert {kind: counts.get(kind, 0) >= n for kind, n in expected.items()} == dict.fromkeys(expected, True)


# ---------------------------------------------------------------- what is kept


def test_keeps_key_names_users_hosts_and_sas_parameters():
    sig = "k3Rj8vQ0%2BpX7wz5Lm2nB4cD6eF8gH0iJ1kL3mN5oP7q%3D"
    url = f"https://acct.blob.core.windows.net/exports/a.csv?sv=2022-11-02&sp=r&sig={sig}&se=2026-12-01"

    assert redact(url) == (
        "https://acct.blob.core.windows.net/exports/a.csv?sv=2022-11-02&sp=r&sig=[redacted:sas_signature]"
        "&se=2026-12-01"
    )
    assert redact("amqps://orders:Zx9!kP2@mq.contoso.com/v") == (
        "amqps://orders:[redacted:url_password]@mq.contoso.com/v"
    )
    assert redact("Server=db;User ID=app;Password=Zx9!kP2;Encrypt=True") == (
        "Server=db;User ID=app;Password=[redacted:password];Encrypt=True"
    )
    assert redact("the password is password=Zx9kP2.") == "the password is password=[redacted:password]."
    assert (
        redact('{"password": "Zx9!kP2", "user": "app"}')
        == '{"password": "[redacted:password]", "user": "app"}'
    )


def test_placeholders_are_not_secrets():
    for value in (
        "",
        "***",
        "xxxx",
        "<token>",
        "${TOKEN}",
        "$TOKEN",
        "%TOKEN%",
        "{{ token }}",
        "null",
        "None",
    ):
        assert is_placeholder(value), value
    for value in ("hunter2!", "Zx9kP2", "ghp_x"):
        assert not is_placeholder(value), value


def test_loosely_labelled_values_must_look_like_credentials():
    assert redact("password: reset") == "password: reset"
    assert redact("password: hunter22") == "password: [redacted:password]"
    assert redact("password = UserPassword") == "password = UserPassword"
    assert redact("password = Hunter2!") == "password = [redacted:password]"
    assert redact("password=hunter") == "password=[redacted:password]"  # key=value is deliberate
    assert redact('password = "hunter"') == 'password = "[redacted:password]"'


def test_secret_field_names():
    assert secret_name_kind("dbPassword") == "password"
    assert secret_name_kind("clientSecret") == "client_secret"
    assert secret_name_kind("client_secret") == "client_secret"
    assert secret_name_kind("accessToken") == "token"
    assert secret_name_kind("apiKey") == "api_key"
    assert secret_name_kind("AccountKey") == "account_key"
    for name in ("tokenType", "passwordPolicy", "key", "max_tokens", "secretName", "signature", "id"):
        assert secret_name_kind(name) is None, name


# ---------------------------------------------------------------- JSON values and models


def test_redact_json_walks_values_keys_and_secret_named_fields():
    token = "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8"
    value = {
        "summary": f"clone with {token}",
        "data": {"dbPassword": "plain", "tokenType": "Bearer", "secret": "", "count": 3, "password": 7},
        "list": [[f"Bearer {token}", None, 1.5]],
        token: "key that is a token",
        "nested": {"apiKey": "${API_KEY}"},
    }

    out, counts = redact_json(value)

    assert token not in str(out)
    assert out["summary"] == "clone with [redacted:github_token]"
    assert out["data"] == {
        "dbPassword": "[redacted:password]",
        "tokenType": "Bearer",
        "secret": "",
        "count": 3,
        "password": 7,
    }
    assert out["list"] == [["Bearer [redacted:github_token]", None, 1.5]]
    assert out["[redacted:github_token]"] == "key that is a token"
    assert out["nested"] == {"apiKey": "${API_KEY}"}
    assert counts == {"github_token": 3, "password": 1}
    assert value["data"]["dbPassword"] == "plain"  # the input is not changed


def test_redact_json_keeps_keys_that_collide_after_redaction():
    a, b = "ghp_" + "A" * 36, "ghp_" + "B" * 36

    out, counts = redact_json({a: 1, b: 2})

    assert out == {"[redacted:github_token]": 1, "[redacted:github_token] #2": 2}
    assert counts == {"github_token": 2}


def test_kql_cells_under_credential_columns_are_redacted():
    table = {
        "kind": "kql",
        "title": "Sign-ins",
        "query": 'SigninLogs | where password == "" | project user, password, clientSecret',
        "columns": ["user", "password", "clientSecret"],
        "rows": [["alice", "Winter2026", "abc"], ["bob", "", None]],
    }

    out, counts = redact_json(table)

    assert out["query"] == table["query"] and out["columns"] == table["columns"]
    assert out["rows"] == [["alice", "[redacted:password]", "[redacted:client_secret]"], ["bob", "", None]]
    assert counts == {"password": 1, "client_secret": 1}


def _handoff(**context) -> HandoffRequest:
    return HandoffRequest.model_validate(
        {
            "source": {"agent": "ops", "threadId": "t-1"},
            "target": {"agent": "checkout"},
            "context": {"title": "Exception burst", "summary": "5xx at 02:10", "severity": "Sev2", **context},
        }
    )


def test_redact_model_returns_the_same_request_when_there_is_nothing_to_redact():
    request = _handoff(hypotheses=["Pool exhausted"])

    out, counts = redact_model(request, HANDOFF_TEXT_FIELDS)

    assert out is request and counts == {}


def test_redact_model_redacts_context_and_correlation_id_only():
    jwt = secret_corpus.jwt()
    request = _handoff(
        summary=f"token rejected: Bearer {jwt}",
        evidence=[
            {
                "kind": "link",
                "title": "export",
                "url": "https://a.blob.core.windows.net/c/x?sp=r&sig=" + "Q" * 43,
            },
            {"kind": "data", "title": "raw", "data": {"connection": {"password": "Zx9!kP2q"}}},
        ],
    ).model_copy(update={"correlation_id": "run password=Zx9!kP2q"})

    out, counts = redact_model(request, HANDOFF_TEXT_FIELDS)

    assert isinstance(out, HandoffRequest)
    text = out.model_dump_json()
    assert jwt not in text and "Zx9!kP2q" not in text and "Q" * 43 not in text
    assert (
        out.context.evidence[0].url == "https://a.blob.core.windows.net/c/x?sp=r&sig=[redacted:sas_signature]"
    )
    assert out.correlation_id == "run password=[redacted:password]"
    assert (out.source, out.target, out.intent) == (request.source, request.target, request.intent)
    assert counts == {"jwt": 1, "password": 2, "sas_signature": 1}


def test_a_marker_longer_than_the_secret_never_breaks_the_schema():
    title = "x" * 293 + " pwd=a1"  # 300 characters, the title's limit
    request = _handoff(title=title)

    out, counts = redact_model(request, HANDOFF_TEXT_FIELDS)

    assert len(out.context.title) == 300 and out.context.title.endswith("…")
    assert "a1" not in out.context.title[290:]
    assert counts == {"password": 1}
    HandoffRequest.model_validate_json(out.model_dump_json())  # it reads back from storage


def test_redact_model_on_a_handback():
    request = HandbackRequest(
        agent="checkout",
        outcome="rootCauseFound",
        summary="Rotated AccountKey=" + "k" * 86 + "==",
        recommended_actions=["Remove api_key=0123456789abcdef from the repo"],
    )

    out, counts = redact_model(request, HANDBACK_TEXT_FIELDS)

    assert out.summary == "Rotated AccountKey=[redacted:account_key]"
    assert out.recommended_actions == ["Remove api_key=[redacted:api_key] from the repo"]
    assert out.agent == "checkout" and counts == {"account_key": 1, "api_key": 1}


# ---------------------------------------------------------------- problems and error texts

CONN = (
    "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=" + secret_corpus.account_key() + ";"
    "EndpointSuffix=core.windows.net"
)


def test_problems_do_not_echo_secrets():
    problem = single_field(Unprocessable, "/source/agent", f"'{CONN}' is not a registered agent")
    body = problem.to_json("/api/handoffs")

    assert "AccountKey=[redacted:account_key]" in body["detail"]
    assert CONN not in str(body) and CONN not in str(problem)
    shown = CONN.split("AccountKey=")[0] + "AccountKey=[redacted:account_key];EndpointSuffix=core.windows.net"
    assert body["errors"] == [{"field": "/source/agent", "message": f"'{shown}' is not a registered agent"}]


def test_problem_instance_and_field_pointers_are_redacted():
    token = secret_corpus.github()
    problem = NotFound(f"no handoff with id '{token}'")
    body = problem.to_json(f"/api/handoffs/{token}")

    assert token not in str(body)
    assert body["instance"] == "/api/handoffs/[redacted:github_token]"
    assert FieldError(field=f"/context/{token}", message="extra").field == "/context/[redacted:github_token]"


def test_describe_redacts_the_body_before_cutting_it():
    jwt = secret_corpus.jwt()
    response = httpx.Response(401, text=" " * 180 + f"token rejected: Bearer {jwt}")

    text = describe("POST", "https://agent.example/api/v1/threads?x=1", response)

    assert jwt[:20] not in text
    assert text.startswith(
        "POST https://agent.example/api/v1/threads answered 401: token rejected: Bearer [re"
    )


def test_agent_and_vendor_errors_are_redacted():
    token = secret_corpus.github()
    response = httpx.Response(403, json={"message": f"Bad credentials for token {token}"})

    assert token not in classify("GET", "https://api.github.com/repos/x/y", response).reason
    assert (
        AgentCallError(f"failed with {token}", transient=True).reason == "failed with [redacted:github_token]"
    )
    assert WriteError(f"failed with {token}", transient=True).reason == "failed with [redacted:github_token]"


def test_every_rule_says_which_literals_its_matches_contain():
    for rule in RULES:
        assert rule.needles, rule.kind
        assert rule.cased or all(needle == needle.lower() for needle in rule.needles), rule.kind


def test_long_tables_are_redacted_row_by_row_without_changing_the_input():
    token = secret_corpus.github()
    rows = [[f"op-{i}", "ok", ""] for i in range(200)]
    rows[150] = ["op-150", f"failed with {token}", "Winter2026!"]
    columns = ["operation", "result", "password"]
    table = {"kind": "kql", "title": "t", "query": "q", "columns": columns, "rows": rows}

    out, counts = redact_json({"evidence": [table]})

    redacted_rows = out["evidence"][0]["rows"]
    assert redacted_rows[150] == ["op-150", "failed with [redacted:github_token]", "[redacted:password]"]
    assert redacted_rows[:150] == rows[:150] and redacted_rows[151:] == rows[151:]
    assert counts == {"github_token": 1, "password": 1}
    assert rows[150][1] == f"failed with {token}"  # the input is not changed


def test_log_records_of_the_broker_are_redacted_message_and_traceback(caplog):
    import logging

    from handoff.domain.models import HandoffRequest
    from handoff.domain.redaction import install_log_redaction

    install_log_redaction()
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    log = logging.getLogger("handoff.test")
    with caplog.at_level(logging.INFO, logger="handoff"):
        log.info("calling with %s", f"Authorization: Bearer {token}")
        try:
            HandoffRequest.model_validate({"source": {"agent": token}})
        except Exception:
            log.exception("unhandled error")
        logging.getLogger("other").warning("not ours: %s", "x")
    assert "unhandled error" in caplog.text and "ValidationError" in caplog.text
    assert token not in caplog.text and "[redacted:" in caplog.text


# ---------------------------------------------------------------- what a reader sees


def _removed_by_rendering() -> list[int]:
    """Every code point of the Basic Multilingual Plane and the tag block that the rendering of caller
    text removes, found by rendering them (line breaks part lines instead, tabs are kept as spaces)."""
    domain = [*range(0x10000), *range(0xE0000, 0xE0080)]
    shown = set("".join(lines_of("".join("a" + chr(c) for c in domain), keep_tabs=True)))
    return [c for c in domain if chr(c) not in shown and not LINE_BREAKS.fullmatch(chr(c))]


REMOVED = _removed_by_rendering()
# The first and the last of each run of removed code points (NUL, the C1 controls, the soft hyphen,
# zero-width spaces and joiners, bidi controls, the BOM, surrogates, tag characters ...).
HIDDEN = sorted(
    {chr(c) for i, c in enumerate(REMOVED) if i in (0, len(REMOVED) - 1) or c - 1 != REMOVED[i - 1]}
    | {chr(c) for i, c in enumerate(REMOVED[:-1]) if REMOVED[i + 1] != c + 1}
    | {"\u200c", "\u200d", "\u2061", "\U000e0041"}
)


def test_redaction_removes_exactly_what_the_rendering_removes():
    assert {c for c in range(0x10000) if strip_invisible(chr(c)) == ""} | {
        c for c in range(0xE0000, 0xE0080) if strip_invisible(chr(c)) == ""
    } == set(REMOVED)
    assert {
        "\x00",
        "\u00ad",
        "\u200b",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u202e",
        "\U000e0041",
        "\ud800",
    } <= set(map(chr, REMOVED))
    assert strip_invisible("a\tb\nc\r\nd\u2028e") == "a\tb\nc\r\nd\u2028e"  # what parts lines stays


@pytest.mark.attack("redaction")
@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("github_token", secret_corpus.github),
        ("azure_client_secret", lambda: "xyz" + secret_corpus.azure_client_secret()[3:]),
    ],
    ids=["github_token", "azure_client_secret"],
)
def test_a_secret_right_after_another_is_cut_in_one_pass(kind, make):
    # The signature's marker sets the token apart from the hex digits it followed.
    text = f"https://bucket/o?X-Amz-Signature={secret_corpus.hex_digits(64)}{make()}"

    out, counts = redact_text(text)

    assert out == f"https://bucket/o?X-Amz-Signature=[redacted:url_signature][redacted:{kind}]"
    assert counts == {"url_signature": 1, kind: 1}
    assert redact_text(out) == (out, {})


def _split(value: str, char: str) -> list[str]:
    """``value`` with ``char`` inside it: after its first character, in its middle, before its last
    one, and between every two characters."""
    return [value[:at] + char + value[at:] for at in (1, len(value) // 2, len(value) - 1)] + [
        char.join(value)
    ]


@pytest.mark.attack("redaction")
@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_no_secret_split_by_an_invisible_character_is_shown_once_rendered(char):
    for case in SECRETS:
        for split in _split(case.value, char):
            out, counts = redact_text(case.text.replace(case.value, split))

            # What a reader sees of a multi-line and of a single-line value, and what JSON, the API
            # and the logs carry, read without the invisible characters.
            assert case.value not in "\n".join(lines_of(out, keep_tabs=True)), (case.kind, out)
            assert case.value.replace("\n", " ") not in single_line(out), (case.kind, out)
            assert case.value not in strip_invisible(out), (case.kind, out)
            assert counts, (case.kind, out)
            assert redact_text(out) == (out, {})


def test_text_with_invisible_characters_and_no_hidden_secret_keeps_every_character():
    for text in (
        "on-call: 👩\u200d💻 paged at 02:10",  # an emoji sequence (zero-width joiner)
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # a Persian word (zero-width non-joiner)
        "re\u00adconnect\u00adion pool exhausted",  # soft hyphens
        "\ufeffBOM at the start, \u200fRLM and \x1b[31mcolour\x1b[0m in a log line",
        *(f"{text} 👩\u200d💻" for text in LOOK_ALIKES),
    ):
        assert redact_text(text) == (text, {}), text
    # A secret visible as written is cut as it always was; the text keeps its other characters.
    assert redact_text("password=Zx9!kP2 by 👩\u200d💻") == (
        "password=[redacted:password] by 👩\u200d💻",
        {"password": 1},
    )


def test_a_split_secret_is_cut_from_the_text_as_shown_with_what_the_text_as_written_shows():
    token, key_id = secret_corpus.github(), secret_corpus.aws_key_id()
    hidden = f"{key_id[:4]}\u00ad{key_id[4:]}"

    assert redact_text(f"see {hidden} now") == (
        "see [redacted:aws_access_key_id] now",
        {"aws_access_key_id": 1},
    )
    # An invisible character that sets a token apart from a word: cut as always (the text as written
    # shows it), and cut too when the text is returned as shown because it also hides a secret.
    assert redact(f"build\u200b{token}") == "build\u200b[redacted:github_token]"
    assert redact_text(f"build\u200b{token} and {hidden}") == (
        "build[redacted:github_token] and [redacted:aws_access_key_id]",
        {"aws_access_key_id": 1, "github_token": 1},
    )


@pytest.mark.attack("redaction")
def test_a_secret_the_text_as_written_shows_is_cut_though_the_text_as_shown_hides_it_in_another():
    token = secret_corpus.github()

    # As written: a token set apart from a word, then a one-letter password and the same token, both
    # set apart by a zero-width space. As shown: a word, and a password that ends with the token.
    out, counts = redact_text(f"x\u200b{token} and password=y\u200b{token}")

    assert token not in strip_invisible(out)
    assert out == "x\u200b[redacted:github_token] and password=[redacted:password][redacted:github_token]"
    assert counts == {"github_token": 2, "password": 1}
    assert redact_text(out) == (out, {})


@pytest.mark.attack("redaction")
def test_a_secret_shown_as_written_and_hidden_elsewhere_is_cut_in_both_places():
    token = secret_corpus.github()

    out, counts = redact_text(f"{token} and {token[:10]}\u200b{token[10:]}")

    assert (out, counts) == ("[redacted:github_token] and [redacted:github_token]", {"github_token": 2})


@pytest.mark.attack("redaction")
def test_what_only_the_text_as_written_shows_is_cut_where_it_was_found_however_short():
    key_id = secret_corpus.aws_key_id()
    hidden = f"{key_id[:4]}\u00ad{key_id[4:]}"

    # "password=\u200b=x" sets a value; "password==x", as shown, compares.
    assert redact_text(f"password=\u200b=x and {hidden}") == (
        "password=[redacted:password] and [redacted:aws_access_key_id]",
        {"password": 1, "aws_access_key_id": 1},
    )


@pytest.mark.attack("redaction")
def test_a_token_that_cutting_a_secret_sets_apart_is_cut_too():
    client_secret, api_key = secret_corpus.azure_client_secret(), secret_corpus.google_api_key()

    # As shown the two run together (neither is a secret); the first is one as written, and once it is
    # cut the second stands alone.
    out, counts = redact_text(f"{client_secret}\u200b{api_key[:1]}\u200b{api_key[1:]}")

    assert (out, counts) == (
        "[redacted:azure_client_secret][redacted:google_api_key]",
        {"azure_client_secret": 1, "google_api_key": 1},
    )


def test_a_secret_only_the_text_as_shown_reveals_is_cut_wherever_it_occurs_unless_short():
    key_id = secret_corpus.aws_key_id()
    hidden = f"{key_id[:4]}\u00ad{key_id[4:]}"

    out, counts = redact_text(
        f"pass\u200bword=Winter2026 in {hidden}; Winter2026 again; pass\u200bword=x1 and 0x1F"
    )

    assert out == (
        "password=[redacted:password] in [redacted:aws_access_key_id]; [redacted:password] again; "
        "password=[redacted:password] and 0x1F"
    )
    assert counts == {"password": 3, "aws_access_key_id": 1}


@pytest.mark.attack("redaction")
def test_a_labelled_secret_is_cut_alike_whether_or_not_an_emoji_holds_a_zero_width_joiner():
    # Both readings find the value: it is cut where it is labelled, other words are left as they are,
    # and the emoji keeps its joiner.
    for text in ("--secret=production. The production cluster {}", "password=Winter2026; Winter2026 {}"):
        joined, alone = redact_text(text.format("👩\u200d💻")), redact_text(text.format("👩💻"))

        assert joined == (alone[0].replace("👩💻", "👩\u200d💻"), alone[1])
    assert redact("--secret=production. The production cluster 👩\u200d💻") == (
        "--secret=[redacted:secret]. The production cluster 👩\u200d💻"
    )


def test_a_secret_looked_for_in_a_text_returned_as_shown_never_cuts_into_a_marker():
    key_id = secret_corpus.aws_key_id()

    out, _ = redact_text(f'password="redacted:token" token: Zx9!kP2abc {key_id[:4]}\u00ad{key_id[4:]}')

    assert out == 'password="[redacted:password]" token: [redacted:token] [redacted:aws_access_key_id]'


# The methods of a text that scan it for a string.
_SCANS = {"count", "replace", "find", "rfind", "index", "split", "startswith", "endswith", "__contains__"}


def _scans(text: str) -> int:
    """How many times redacting ``text`` scans a text for a string, not counting the search of each
    rule's literals (each occurrence found once, in one scan)."""
    scans = 0
    literals = engine._Positions.of.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal scans
        owner = getattr(arg, "__self__", None) if event == "c_call" else None
        if isinstance(owner, str) and arg.__name__ in _SCANS and frame.f_code is not literals:
            scans += 1

    before = sys.getprofile()
    sys.setprofile(profile)
    try:
        redact_text(text)
    finally:
        sys.setprofile(before)
    return scans


@pytest.mark.attack("redaction")
def test_redacting_scans_a_text_a_bounded_number_of_times_however_many_secrets_it_holds():
    key_id = secret_corpus.aws_key_id()

    def crafted(tokens: int) -> str:  # tokens set apart by invisible characters, one hidden secret
        return f"{key_id[:4]}\u00ad{key_id[4:]}" + "".join(
            f" x\u200b{secret_corpus.github()}" for _ in range(tokens)
        )

    few, many = crafted(100), crafted(400)
    assert _scans(few) == _scans(many) <= 2 * engine._CARRIED_AT_MOST
    out, counts = redact_text(many)
    assert "ghp_" not in out and counts == {"aws_access_key_id": 1, "github_token": 400}


def test_fields_and_columns_named_with_invisible_characters_name_a_credential():
    value = {
        "pass\u200bword": "Winter2026",
        "table": {"kind": "kql", "columns": ["user", "client\u00adSecret"], "rows": [["alice", "abc"]]},
    }

    out, counts = redact_json(value)

    assert out["pass\u200bword"] == "[redacted:password]"
    assert out["table"]["rows"] == [["alice", "[redacted:client_secret]"]]
    assert counts == {"password": 1, "client_secret": 1}


def test_log_records_with_a_split_secret_are_redacted(caplog):
    import logging

    from handoff.domain.redaction import install_log_redaction

    install_log_redaction()
    token = secret_corpus.github()
    with caplog.at_level(logging.INFO, logger="handoff"):
        logging.getLogger("handoff.test").info("calling with %s", f"{token[:10]}\u2060{token[10:]}")
    assert token not in strip_invisible(caplog.text) and "[redacted:github_token]" in caplog.text
