"""The Handoff Broker: hands investigations between Azure SRE Agents (see README.md)."""

# The release, as pyproject.toml states it (tests/unit/test_version.py keeps the two equal). A Functions
# deployment ships the package's files, not an installed distribution, so there is no metadata to read.
__version__ = "0.1.0"
