"""The ingest benchmark: the webhook receiver against a no-op Flask app under the same gunicorn
settings (run it with `python -m bench.ingest`; see BENCHMARKS.md)."""
