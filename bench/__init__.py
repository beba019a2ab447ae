"""Benchmarks: our plugins vs the Go reference binaries, in the same run (see run.py)."""
