"""Run every benchmark (``make bench``)."""

from __future__ import annotations

from bench import import_time

if __name__ == "__main__":
    import_time.main([])
