"""The CRM writers benchmark (`python -m bench.sync`): API calls, delta, faults, throughput."""
