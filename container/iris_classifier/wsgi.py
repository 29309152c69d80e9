"""Runtime: you should not need to edit this. The WSGI entry point gunicorn loads as ``wsgi:app``."""

from predictor import create_app
from settings import Settings

# Preloading (the gunicorn master imports this before forking): load now, once.
# Otherwise this runs in each worker: load on a thread so /ping answers meanwhile.
app = create_app(load_in_background=not Settings.from_env().preload)
