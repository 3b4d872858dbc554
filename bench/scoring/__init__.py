"""The scoring benchmark: a synthetic book of accounts written straight into the state tables,
then the full rescore (time, peak memory) and single-account recompute latency, on SQLite and
PostgreSQL (run it with `python -m bench.scoring`; see BENCHMARKS.md)."""
