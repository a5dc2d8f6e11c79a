"""The Celery side of the stack: the app, the ingest task, heartbeats and the reaper."""
