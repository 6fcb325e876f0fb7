"""Local stand-ins for the external services: token endpoint, ARM and SRE Agents, as real HTTP servers."""

from devserver.fakes._service import Fault, HttpError
from devserver.fakes.arm import FakeArm
from devserver.fakes.identity import FakeIdentity, decode_token, mint_token
from devserver.fakes.sre_agent import FakeSreAgent
from devserver.fakes.stack import FakeStack, agent_resource_id, start_fake_stack

__all__ = [
    "FakeArm",
    "FakeIdentity",
    "FakeSreAgent",
    "FakeStack",
    "Fault",
    "HttpError",
    "agent_resource_id",
    "decode_token",
    "mint_token",
    "start_fake_stack",
]
