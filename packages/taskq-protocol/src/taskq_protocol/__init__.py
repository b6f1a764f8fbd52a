"""taskq: Celery protocol v2 message model, envelopes and result meta."""
