"""Jinja2 templates of the Compose deployment (rendered by ``ragctl render``); shipped as package data."""
