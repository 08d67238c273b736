"""Development settings: the embedded defaults (SQLite, in-memory layer, offline upstream)."""

from supportbot.settings.base import *
from supportbot.settings.env import env

DEBUG = env.bool("DEBUG", default=True)
