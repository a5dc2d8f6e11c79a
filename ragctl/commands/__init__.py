"""Groups of ragctl commands, each registered on the Typer app by ``register(app)``."""
