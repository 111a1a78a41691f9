"""Celery wiring: the app, the partition router, partition ownership and worker processes.

No business logic lives here.
"""
