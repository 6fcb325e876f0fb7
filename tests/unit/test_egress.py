"""The egress policy of every outbound call (handoff/adapters/egress/, handoff/adapters/http.py).

Nothing here leaves the process: names are resolved by an injected resolver and the requests that
pass the policy reach an ``httpx.MockTransport`` that records them. Each refusal test also proves the
inner transport was never called (refusal happens before any connection).
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from handoff.adapters.egress import (
    ALLOW_INSECURE_LOCAL,
    AsyncEgressTransport,
    EgressError,
    EgressPolicy,
    EgressTransport,
)
from handoff.adapters.http import (
    AsyncTracedTransport,
    TracedTransport,
    _client_options,
    insecure_local,
    make_async_http_client,
    make_http_client,
)
from handoff.adapters.http import transport_error as classify_transport_error
from handoff.domain.net import parse_networks
from handoff.settings import APP_ROOT, Settings

HOST = "agent.example.test"


class Recorder:
    """An inner transport that records what reaches it and answers with ``answer``."""

    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer if self.answer is not None else httpx.Response(200, json={"ok": True})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def resolver_for(*addresses: str, calls: list[str] | None = None):
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host != HOST:
            raise OSError(f"unknown host {host}")
        return list(addresses)

    return resolve


def client(recorder: Recorder, *addresses: str, allow_local: bool = False, **policy: object) -> httpx.Client:
    egress = EgressPolicy(resolver=resolver_for(*addresses), **policy)  # type: ignore[arg-type]
    transport = EgressTransport(egress, allow_insecure_local=allow_local, inner=recorder.transport)
    return httpx.Client(transport=transport, **_client_options(5.0))


# ---------------------------------------------------------------- addresses

REFUSED = [
    ("10.0.0.5", "private address (RFC 1918)"),
    ("172.16.0.1", "private address (RFC 1918)"),
    ("172.31.255.254", "private address (RFC 1918)"),
    ("192.168.1.10", "private address (RFC 1918)"),
    ("fd12:3456::1", "unique local"),
    ("fc00::1", "unique local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("169.254.10.10", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "metadata"),
    ("168.63.129.16", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved or non-public"),
    ("255.255.255.255", "reserved or non-public"),
    ("192.0.2.10", "reserved or non-public"),
    ("198.18.0.1", "reserved or non-public"),
    ("2001:db8::1", "reserved or non-public"),
    ("::ffff:10.0.0.5", "private address (RFC 1918)"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:127.0.0.1", "loopback"),
    ("2002:a00:5::1", "private address (RFC 1918) (10.0.0.5, carried in an IPv6 address)"),
    ("64:ff9b::a9fe:a9fe", "metadata address (never allowed) (169.254.169.254, carried in an IPv6 address)"),
    ("64:ff9b::a00:5", "private address (RFC 1918) (10.0.0.5, carried in an IPv6 address)"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[a for a, _ in REFUSED])
def test_refused_ranges_are_refused_before_any_connection(address, reason):
    recorder = Recorder()
    with client(recorder, address) as http, pytest.raises(EgressError) as info:
        http.get(f"https://{HOST}/api/v1/threads")
    assert reason in str(info.value)
    assert f"{HOST} resolves to {address}" in str(info.value)
    assert recorder.requests == []


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "::1", "[::1]", "127.0.0.1"])
def test_address_literals_in_the_url_are_checked_too(address):
    recorder = Recorder()
    host = address if address.startswith("[") else (f"[{address}]" if ":" in address else address)
    with client(recorder) as http, pytest.raises(EgressError):
        http.get(f"https://{host}/x")
    assert recorder.requests == []


@pytest.mark.parametrize("address", ["20.42.65.92", "52.239.152.10", "2603:1030:20e:3::23c"])
def test_public_addresses_are_allowed_and_the_connection_is_pinned_to_the_checked_address(address):
    recorder = Recorder()
    with client(recorder, address) as http:
        response = http.get(f"https://{HOST}/api/v1/threads?x=1")
    assert response.status_code == 200 and response.json() == {"ok": True}
    [sent] = recorder.requests
    # the URL's host is the address that was checked; Host and the TLS server name stay the name
    assert ipaddress.ip_address(sent.url.host) == ipaddress.ip_address(address)
    assert sent.headers["host"] == HOST
    assert sent.extensions["sni_hostname"] == HOST
    assert sent.url.raw_path == b"/api/v1/threads?x=1"


def test_one_bad_address_among_good_ones_refuses_the_call():
    recorder = Recorder()
    with (
        client(recorder, "20.42.65.92", "10.0.0.5") as http,
        pytest.raises(EgressError, match=r"10\.0\.0\.5"),
    ):
        http.get(f"https://{HOST}/")
    assert recorder.requests == []


def test_the_address_checked_is_the_address_connected_to_even_when_dns_changes_its_answer():
    answers = iter([["20.42.65.92"], ["10.0.0.5"]])
    recorder = Recorder()
    policy = EgressPolicy(resolver=lambda host, port: next(answers))
    transport = EgressTransport(policy, inner=recorder.transport)
    with httpx.Client(transport=transport) as http:
        assert http.get(f"https://{HOST}/a").status_code == 200
        with pytest.raises(EgressError, match=r"10\.0\.0\.5"):
            http.get(f"https://{HOST}/b")
    assert [str(r.url) for r in recorder.requests] == ["https://20.42.65.92/a"]


def test_a_name_that_does_not_resolve_is_a_transient_connect_error():
    recorder = Recorder()
    with client(recorder, "20.42.65.92") as http, pytest.raises(httpx.ConnectError):
        http.get("https://other.example.test/")
    error = classify_transport_error("GET", "https://other.example.test/", httpx.ConnectError("x"))
    assert error.transient


# ---------------------------------------------------------------- the allow-list setting


def test_allowed_networks_open_private_ranges_but_never_metadata():
    networks = parse_networks("10.20.0.0/16, fd12:3456::/48,169.254.0.0/16")
    for address, allowed in [
        ("10.20.1.2", True),
        ("10.21.0.1", False),
        ("fd12:3456::9", True),
        ("fd12:3457::9", False),
        ("169.254.10.10", True),
        ("169.254.169.254", False),
    ]:
        recorder = Recorder()
        with client(recorder, address, allowed_networks=networks) as http:
            if allowed:
                assert http.get(f"https://{HOST}/").status_code == 200
                assert len(recorder.requests) == 1
            else:
                with pytest.raises(EgressError):
                    http.get(f"https://{HOST}/")
                assert recorder.requests == []


# An IPv6-only deployment behind NAT64 allows 64:ff9b::/96 (and may allow 6to4 or Teredo): the metadata
# addresses such an address carries are refused all the same.
CARRIED_METADATA = [
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("64:ff9b::a83f:8110", "168.63.129.16"),
    ("2002:a9fe:a9fe::1", "169.254.169.254"),
    ("2002:a83f:8110::1", "168.63.129.16"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),  # Teredo, client address obfuscated
    ("2001:0:4136:e378:8000:63bf:57c0:7eef", "168.63.129.16"),
    ("::ffff:169.254.169.254", "169.254.169.254"),
]
ALL_OF_IPV6 = "64:ff9b::/96, 2002::/16, 2001::/32, ::ffff:0:0/96"


@pytest.mark.attack("urls")
@pytest.mark.parametrize(("address", "carried"), CARRIED_METADATA, ids=[a for a, _ in CARRIED_METADATA])
def test_a_metadata_address_carried_in_an_allowed_ipv6_network_is_still_refused(address, carried):
    recorder = Recorder()
    networks = parse_networks(ALL_OF_IPV6)
    with (
        client(recorder, address, allowed_networks=networks) as http,
        pytest.raises(EgressError, match="metadata address") as info,
    ):
        http.get(f"https://{HOST}/")
    assert carried in str(info.value)
    assert "HANDOFF_EGRESS_ALLOWED_NETWORKS" not in str(info.value)  # no allow-list can open it
    assert recorder.requests == []


@pytest.mark.parametrize("address", ["64:ff9b::142a:415c", "2002:142a:415c::1"])
def test_an_allowed_ipv6_network_still_reaches_the_public_ipv4_addresses_it_carries(address):
    recorder = Recorder()
    with client(recorder, address, allowed_networks=parse_networks(ALL_OF_IPV6)) as http:
        assert http.get(f"https://{HOST}/").status_code == 200
    assert len(recorder.requests) == 1


def test_the_allow_list_comes_from_the_settings_and_bad_cidrs_fail_at_start():
    settings = Settings.from_env(
        {"HANDOFF_EGRESS_ALLOWED_NETWORKS": "10.20.0.0/16", "HANDOFF_MAX_RESPONSE_BYTES": "2048"}
    )
    policy = EgressPolicy.from_settings(settings)
    assert policy.allowed_networks == (ipaddress.ip_network("10.20.0.0/16"),)
    assert policy.max_response_bytes == 2048
    assert EgressPolicy.from_settings(Settings.from_env({})).max_response_bytes == 4 * 1024 * 1024
    for bad in ("10.0.0.1/8", "ten.0.0.0/8", "10.0.0.0/33"):
        with pytest.raises(ValueError, match=r"egress_allowed_networks"):
            Settings.from_env({"HANDOFF_EGRESS_ALLOWED_NETWORKS": bad})


# ---------------------------------------------------------------- schemes and allowInsecureLocal


@pytest.mark.parametrize(
    ("url", "addresses", "allow_local", "allowed"),
    [
        (f"http://{HOST}/", ["20.42.65.92"], False, False),  # plain http to the internet
        (f"http://{HOST}/", ["20.42.65.92"], True, False),  # allowInsecureLocal is loopback only
        (f"http://{HOST}/", ["127.0.0.1"], False, False),
        (f"http://{HOST}/", ["127.0.0.1"], True, True),
        ("http://127.0.0.1:9000/", [], True, True),
        ("http://[::1]:9000/", [], True, True),
        ("http://10.0.0.5/", [], True, False),
        (f"https://{HOST}/", ["127.0.0.1"], False, False),
        (f"https://{HOST}/", ["127.0.0.1"], True, True),
        (f"ftp://{HOST}/", ["20.42.65.92"], True, False),
    ],
)
def test_http_only_to_loopback_and_only_with_allow_insecure_local(url, addresses, allow_local, allowed):
    recorder = Recorder()
    with client(recorder, *addresses, allow_local=allow_local) as http:
        if allowed:
            assert http.get(url).status_code == 200
            assert len(recorder.requests) == 1
        else:
            with pytest.raises((EgressError, httpx.UnsupportedProtocol)):
                http.get(url)
            assert recorder.requests == []


def test_a_request_carries_its_own_allow_insecure_local_over_the_client_default():
    recorder = Recorder()
    with client(recorder, "127.0.0.1") as http:
        with pytest.raises(EgressError, match="only https"):
            http.get(f"http://{HOST}/")
        assert http.get(f"http://{HOST}/", extensions=insecure_local(True)).status_code == 200
    with (
        client(recorder, "127.0.0.1", allow_local=True) as http,
        pytest.raises(EgressError, match="loopback"),
    ):
        http.get(f"https://{HOST}/", extensions={ALLOW_INSECURE_LOCAL: False})
    assert len(recorder.requests) == 1


# ---------------------------------------------------------------- redirects


def test_redirects_are_not_followed():
    recorder = Recorder(httpx.Response(302, headers={"Location": "http://169.254.169.254/metadata"}))
    with client(recorder, "20.42.65.92") as http:
        response = http.post(f"https://{HOST}/api/v1/threads", json={})
    assert response.status_code == 302
    assert len(recorder.requests) == 1  # nothing was sent to the Location


def test_factory_clients_do_not_follow_redirects_or_trust_the_environment_and_have_timeouts():
    policy = EgressPolicy(resolver=resolver_for("20.42.65.92"))
    with make_http_client(7.0, policy) as http:
        assert http.follow_redirects is False and http.trust_env is False
        assert http.timeout.read == 7.0 and http.timeout.connect == 7.0
        assert http.headers["accept-encoding"] == "identity"
        # Every call is traced (a pass-through while telemetry is off), then checked by the egress policy.
        assert isinstance(http._transport, TracedTransport)
        assert isinstance(http._transport.inner, EgressTransport)
    async_http = make_async_http_client(20.0, {"X-Test": "1"}, policy, allow_insecure_local=True)
    assert async_http.follow_redirects is False and async_http.trust_env is False
    assert async_http.timeout.connect == 10.0 and async_http.timeout.read == 20.0
    assert isinstance(async_http._transport, AsyncTracedTransport)
    assert isinstance(async_http._transport.inner, AsyncEgressTransport)
    assert async_http._transport.inner.allow_insecure_local is True


def test_every_outbound_http_client_comes_from_the_one_factory():
    """No module builds its own httpx client (and so escapes the egress policy)."""
    offenders = []
    for path in sorted((APP_ROOT / "handoff").rglob("*.py")):
        if path.name == "http.py" and path.parent.name == "adapters":
            continue
        # The `handoff` command line runs on a person's machine and calls only the broker it is pointed at
        # (tests/unit/test_cli.py checks it imports nothing of the broker): it is not the broker's egress.
        if path.parent == APP_ROOT / "handoff" / "entrypoints" / "cli":
            continue
        text = path.read_text()
        if re.search(r"httpx\.(Async)?Client\(|httpx\.(get|post|put|patch|delete|request|stream)\(", text):
            offenders.append(str(Path(path).relative_to(APP_ROOT)))
        if re.search(r"\b(requests|urllib3|aiohttp)\b\.|urllib\.request", text):
            offenders.append(str(Path(path).relative_to(APP_ROOT)))
    assert offenders == []


# ---------------------------------------------------------------- the size cap


class CountingStream(httpx.SyncByteStream):
    """A body of ``chunks`` chunks of ``size`` bytes that counts how many were read."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks, self.size, self.read = chunks, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.read += 1
            yield b"x" * self.size


def test_an_answer_over_the_cap_fails_while_streaming_without_reading_it_all():
    stream = CountingStream(chunks=1000, size=1024)  # 1000 KiB, no Content-Length
    recorder = Recorder(httpx.Response(200, stream=stream))
    big = pytest.raises(EgressError, match="response larger than 10240 bytes")
    with client(recorder, "20.42.65.92", max_response_bytes=10 * 1024) as http, big as info:
        http.get(f"https://{HOST}/api/v1/threads")
    assert stream.read == 11  # stopped at the first chunk past the cap
    error = classify_transport_error("GET", f"https://{HOST}/api/v1/threads", info.value)
    assert not error.transient and "response larger than 10240 bytes" in error.reason


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read():
    stream = CountingStream(chunks=3, size=1024)
    recorder = Recorder(httpx.Response(200, stream=stream, headers={"Content-Length": "3072"}))
    with client(recorder, "20.42.65.92", max_response_bytes=2048) as http, pytest.raises(EgressError):
        http.get(f"https://{HOST}/")
    assert stream.read == 0


def test_an_answer_at_the_cap_is_read_whole():
    recorder = Recorder(httpx.Response(200, content=b"y" * 2048))
    with client(recorder, "20.42.65.92", max_response_bytes=2048) as http:
        assert http.get(f"https://{HOST}/").content == b"y" * 2048


def test_the_cap_counts_decoded_bytes_so_a_compression_bomb_is_stopped():
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # about 8 KiB on the wire
    recorder = Recorder(httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"}))
    big = pytest.raises(EgressError, match="response larger than 65536 bytes")
    with client(recorder, "20.42.65.92", max_response_bytes=64 * 1024) as http, big:
        http.get(f"https://{HOST}/")
    small = gzip.compress(b'{"id": "t-1"}')
    recorder = Recorder(httpx.Response(200, content=small, headers={"Content-Encoding": "gzip"}))
    with client(recorder, "20.42.65.92", max_response_bytes=64 * 1024) as http:
        response = http.get(f"https://{HOST}/")
    assert response.json() == {"id": "t-1"} and "content-encoding" not in response.headers


def test_unsupported_content_encodings_are_refused():
    recorder = Recorder(httpx.Response(200, content=b"...", headers={"Content-Encoding": "br"}))
    with client(recorder, "20.42.65.92") as http, pytest.raises(EgressError, match="Content-Encoding"):
        http.get(f"https://{HOST}/")


def test_a_body_still_arriving_when_the_time_is_spent_is_a_timeout():
    ticks = iter(range(100))
    policy = EgressPolicy(resolver=resolver_for("20.42.65.92"), clock=lambda: float(next(ticks)))
    recorder = Recorder(httpx.Response(200, stream=CountingStream(chunks=50, size=10)))
    transport = EgressTransport(policy, total_timeout=5.0, inner=recorder.transport)
    with httpx.Client(transport=transport) as http, pytest.raises(httpx.ReadTimeout) as info:
        http.get(f"https://{HOST}/")
    assert classify_transport_error("GET", f"https://{HOST}/", info.value).transient


# ---------------------------------------------------------------- async twin (the A2A client)


def test_the_async_transport_applies_the_same_policy():
    async def main() -> tuple[list[httpx.Request], int, str, str]:
        recorder = Recorder(httpx.Response(200, stream=httpx.ByteStream(b"z" * 5000)))
        good = EgressPolicy(resolver=resolver_for("20.42.65.92"), max_response_bytes=8192)
        async with httpx.AsyncClient(transport=AsyncEgressTransport(good, inner=recorder.transport)) as http:
            ok = (await http.get(f"https://{HOST}/a2a")).status_code
        bad = EgressPolicy(resolver=resolver_for("169.254.169.254"))
        async with httpx.AsyncClient(transport=AsyncEgressTransport(bad, inner=recorder.transport)) as http:
            try:
                await http.post(f"https://{HOST}/a2a", json={})
            except EgressError as exc:
                refused = str(exc)
        small = EgressPolicy(resolver=resolver_for("20.42.65.92"), max_response_bytes=1024)
        async with httpx.AsyncClient(transport=AsyncEgressTransport(small, inner=recorder.transport)) as http:
            try:
                await http.get(f"https://{HOST}/a2a")
            except EgressError as exc:
                capped = str(exc)
        return recorder.requests, ok, refused, capped

    requests, ok, refused, capped = anyio.run(main)
    assert ok == 200 and "metadata" in refused and "response larger than 1024 bytes" in capped
    assert [r.url.host for r in requests] == ["20.42.65.92", "20.42.65.92"]  # the refused one never left


def test_egress_refusals_are_permanent_failures_with_the_reason():
    request = httpx.Request("POST", f"https://{HOST}/api/v1/threads")
    error = classify_transport_error(
        "POST", str(request.url), EgressError("POST ... refused: why", request=request)
    )
    assert error.transient is False and error.reason == "POST ... refused: why"
    assert classify_transport_error("POST", str(request.url), httpx.ReadTimeout("slow")).transient
