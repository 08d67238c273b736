"""Development settings: the embedded defaults (SQLite, in-memory layer, offline upstream)."""

from supportbot.settings.base import *
from supportbot.settings.env import env

DEBUG = env.bool("DEBUG", default=True)

# Serve static files straight from the app directories, no collectstatic step for `make run`.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
