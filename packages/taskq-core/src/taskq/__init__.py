"""taskq: a distributed task queue that speaks Celery's protocol."""
