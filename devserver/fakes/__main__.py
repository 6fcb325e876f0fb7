"""``python -m devserver.fakes``: run the token endpoint, ARM and simulated SRE Agents until Ctrl-C."""

from devserver.fakes.stack import main

main()
