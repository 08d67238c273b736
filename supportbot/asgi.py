"""ASGI entry point: HTTP through Django, websockets through Channels (session auth, origin check)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportbot.settings.local")

# Django must be set up before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from apps.chat.routing import websocket_urlpatterns
from apps.core.logging import RequestIdASGIMiddleware
from apps.inbox.routing import websocket_urlpatterns as inbox_websocket_urlpatterns
from apps.widget.routing import websocket_urlpatterns as widget_websocket_urlpatterns

# The request id wraps everything, so the server's access line for a request carries it as well.
application = RequestIdASGIMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(
                    URLRouter([*widget_websocket_urlpatterns, *inbox_websocket_urlpatterns, *websocket_urlpatterns])
                )
            ),
        }
    )
)

# Everything loaded so far (Django, the apps, the SDK's types, settings) lives as long as the process:
# take it out of the cyclic collector's scans. Otherwise each full collection walks those ~220,000
# objects again, pausing the event loop for ~130 ms in the middle of streaming answers; frozen, a
# full collection took ~60 ms and the time spent collecting over a 500-question bench run halved
# (bench/ws_bench.py). Only objects created later are ever collected.
gc.freeze()
