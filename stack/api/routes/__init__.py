"""The API's routes, one router per area; ``stack.api.app.create_app`` includes them all."""
