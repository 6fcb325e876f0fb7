"""Benchmarks: figures from one run (medians and ratios), not pass/fail checks."""
