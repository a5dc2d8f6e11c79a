"""The document pipeline: sniff → parse → chunk → embed → store, lexical index, retrieval, answers.

Free of transport: the CLI's embedded mode, the API and the Celery worker all call these functions.
Heavy libraries (torch, chromadb, kiwipiepy, parsers) are imported inside the functions that use them.
"""
