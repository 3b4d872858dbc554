"""Integration layer: the webhook receiver, one module per source, and (later) the CRM writers."""
