"""A simulated Azure SRE Agent data plane (threads, messages, HTTP triggers, approvals).

One :class:`FakeSreAgent` is one ``Microsoft.App/agents`` resource; started, it serves its own base
URL, which plays the part of ``properties.agentEndpoint``. It checks what the real service is known
to check: case-insensitive paths, a bearer token from the token endpoint with an accepted audience
(``https://azuresre.dev``, the SRE Agent app id or ``https://azuresre.ai``; ARM tokens get ``401``),
optionally the caller's principal (``403``), and the request shapes.

Replies of the agent itself can be simulated (``auto_reply``): after a new thread or a user message
the agent appends a message that is incomplete at first (its text grows as if streamed) and becomes
complete after ``auto_reply_delay`` seconds. Completion is evaluated lazily at read time, so no
background task is involved.

Layout: :mod:`.state` (messages, threads, triggers and pure helpers), :mod:`.store` (the state of one
agent and the operations on it), :mod:`.data_plane` and :mod:`.triggers` (the service's endpoints),
:mod:`.control` (the ``/_fake/`` test-control endpoints), :mod:`.pages` (HTML pages of the threads, for
people watching a local run) and :mod:`.agent` (:class:`FakeSreAgent`).
"""

from devserver.fakes.sre_agent.agent import FakeSreAgent
from devserver.fakes.sre_agent.state import (
    AGENT_ROLE,
    AUDIENCE_APP_ID,
    AUDIENCE_AZURESRE_AI,
    AUDIENCE_AZURESRE_DEV,
    DEFAULT_AUDIENCES,
    TITLE_MAX,
    USER_ROLE,
    Message,
    ReplyText,
    Thread,
    Trigger,
    TriggerResponseForm,
    default_reply,
    render_trigger_prompt,
    title_from,
)

__all__ = [
    "AGENT_ROLE",
    "AUDIENCE_APP_ID",
    "AUDIENCE_AZURESRE_AI",
    "AUDIENCE_AZURESRE_DEV",
    "DEFAULT_AUDIENCES",
    "TITLE_MAX",
    "USER_ROLE",
    "FakeSreAgent",
    "Message",
    "ReplyText",
    "Thread",
    "Trigger",
    "TriggerResponseForm",
    "default_reply",
    "render_trigger_prompt",
    "title_from",
]
