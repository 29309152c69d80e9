"""The WSGI entry point gunicorn loads as ``wsgi:app``."""

from predictor import create_app

app = create_app()
