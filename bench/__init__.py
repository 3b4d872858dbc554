"""Benchmarks run against real processes on this machine (see BENCHMARKS.md)."""
