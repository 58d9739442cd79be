"""Embedding arrowloop in an ASGI service: a Starlette application that owns
a supervised pipeline in its lifespan and serves it over HTTP (see app.py)."""
