"""ragctl: question answering over your own documents, operated from one CLI."""

__version__ = "0.1.0"
