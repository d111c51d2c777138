"""Benchmarks: `python -m benchmarks.<name>` from the project root, each printing its figures."""
