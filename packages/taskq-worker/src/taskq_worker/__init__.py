"""The taskq worker."""
