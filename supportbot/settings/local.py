"""Development settings: the embedded defaults (SQLite, in-memory layer, offline upstream)."""

from supportbot.settings.base import *
from supportbot.settings.base import LOG_LEVEL, logging_config
from supportbot.settings.env import env

DEBUG = env.bool("DEBUG", default=True)

# Readable lines in a terminal; LOG_FORMAT=json gives the production format.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
