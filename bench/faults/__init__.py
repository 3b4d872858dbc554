"""Fault tests for ingest: kill -9 the worker during a replay, stop Redis during a replay, and
check that every accepted event is applied exactly once (run with `python -m bench.faults`)."""
