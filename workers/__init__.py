"""Workers: the Celery app and its tasks, with the domain logic they call (ingest, state)."""
