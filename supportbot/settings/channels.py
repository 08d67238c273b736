"""Channels: the Redis layer when REDIS_URL is set, the in-memory layer otherwise.

Tokens never travel through the layer (they are sent by the consumer that owns the socket); the layer
carries control events only, so its default capacity is ample.
"""

from supportbot.settings.env import env

_REDIS_URL = env.str("REDIS_URL", default="")

if _REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "apps.core.channel_layers.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [_REDIS_URL]},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
