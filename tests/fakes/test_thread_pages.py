"""The simulated agents' HTML pages and the portal stand-in that opens the broker's thread links locally."""

from __future__ import annotations

from handoff.domain.messages import thread_url
from tests.fakes.conftest import SRE_SCOPE

HOSTILE = "<script>alert(\"x\")</script><img src=x onerror=alert(1)> & 'quoted'"


def test_a_thread_page_shows_messages_escaped_newest_last(stack, http):
    checkout = stack.agents["checkout"]
    thread = checkout.create_thread(f"Handoff: {HOSTILE}", display_name="<b>Ops</b>")
    checkout.add_message(thread["id"], "Second: found the pool limit")
    checkout.add_message(thread["id"], f"Third {HOSTILE}")

    page = http.get(f"{checkout.endpoint}/threads/{thread['id']}")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    html = page.text
    assert "<script" not in html and "<img" not in html and "<b>Ops" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Ops&lt;/b&gt;" in html
    assert "&amp; &#x27;quoted&#x27;" in html
    assert html.index("Handoff: ") < html.index("Second: found") < html.index("Third ")


def test_the_index_lists_threads_with_links_to_their_pages(stack, http):
    ops = stack.agents["ops"]
    first = ops.create_thread("Older investigation")
    second = ops.create_thread(f"Newer {HOSTILE}")

    page = http.get(f"{ops.endpoint}/")

    assert page.status_code == 200
    html = page.text
    assert f'href="/threads/{first["id"]}"' in html and f'href="/threads/{second["id"]}"' in html
    assert html.index(second["id"]) < html.index(first["id"])  # newest first
    assert "<script" not in html and "&lt;script&gt;" in html


def test_an_unknown_thread_is_a_404_page(stack, http):
    page = http.get(f"{stack.agents['ops'].endpoint}/threads/no-such-thread")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


def test_pages_need_no_token_and_are_not_recorded(stack, http, token):
    ops = stack.agents["ops"]
    thread = ops.create_thread("Watching")
    assert http.get(f"{ops.endpoint}/threads/{thread['id']}").status_code == 200
    assert ops.requests() == []
    # The data plane still wants its token.
    assert http.get(f"{ops.endpoint}/api/v1/threads").status_code == 401
    headers = {"Authorization": f"Bearer {token(SRE_SCOPE)}"}
    assert http.get(f"{ops.endpoint}/api/v1/threads", headers=headers).status_code == 200


def test_the_portal_opens_the_link_the_broker_writes(stack, http):
    checkout = stack.agents["checkout"]
    thread = checkout.create_thread("Exception burst in checkout-api")
    link = thread_url(checkout.resource_id, thread["id"])
    assert link is not None
    local = stack.portal_url + link.removeprefix("https://sre.azure.com")
    assert local == stack.portal.thread_link(checkout, thread["id"])

    redirect = http.get(local)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{checkout.endpoint}/threads/{thread['id']}"
    page = http.get(local, follow_redirects=True)
    assert page.status_code == 200 and "Exception burst in checkout-api" in page.text

    unknown = http.get(local.replace("checkout-agent", "nobody-agent"))
    assert unknown.status_code == 404
    index = http.get(f"{stack.portal_url}/")
    assert f'href="{checkout.endpoint}/"' in index.text
