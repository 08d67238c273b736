"""A minimal Channels application for bench/asgi_server_choice.py: streams N delta frames per request."""

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path


class StreamConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: dict, **kwargs) -> None:
        for index in range(int(content.get("deltas", 10))):
            await self.send_json({"type": "delta", "text": f"tok{index} "})
        await self.send_json({"type": "done"})


application = URLRouter([path("", StreamConsumer.as_asgi())])
