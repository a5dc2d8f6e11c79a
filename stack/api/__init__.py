"""The HTTP API (FastAPI): registers uploads and answers at once; workers do the heavy work."""
