"""The services of a ragctl stack: settings, the document pipeline, and (later) the API and workers."""
