"""Log lines carrying the request / conversation id: JSON for machines, one readable line for people.

`LOG_FORMAT` picks the formatter (`supportbot.settings.base.logging_config`): `console` in development,
`json` in production. Uvicorn's own loggers (access lines included) propagate to the same handler, and
`RequestIdASGIMiddleware` sets the request id before uvicorn writes a request's access line, so every
line of a request — Django's, ours and uvicorn's — carries the same id.
"""

import contextvars
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
conversation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("conversation_id", default="")

REQUEST_ID_HEADER = "X-Request-ID"
LOG_FORMATS = ("console", "json")


def request_id_adopt(incoming: str) -> str:
    """A well-formed incoming X-Request-ID (from a proxy), else a new id: a header never injects
    arbitrary text into the logs."""
    if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return uuid.uuid4().hex


class RequestContextFilter(logging.Filter):
    """Copies the current request / conversation id (context variables) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.conversation_id = conversation_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", ""),
            "conversation_id": getattr(record, "conversation_id", ""),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`15:07:23 INFO  uvicorn.access [req 3f2a…] 127.0.0.1:5000 - "GET / HTTP/1.1" 200`: the ids only
    when there are some, so start-up lines stay short."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        ids = []
        if request_id := getattr(record, "request_id", ""):
            ids.append(f"req {request_id}")
        if conversation_id := getattr(record, "conversation_id", ""):
            ids.append(f"conv {conversation_id}")
        context = f" [{' '.join(ids)}]" if ids else ""
        line = f"{time} {record.levelname:<5} {record.name}{context} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestIdASGIMiddleware:
    """Sets the request id for the whole ASGI call, around Django and Channels.

    Uvicorn writes its access line inside the application's `send` of the response start, so the id
    set here is the one on that line; Django's `RequestIdMiddleware` reuses it (its thread inherits
    the context) and echoes it on the response.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        token = request_id_var.set(request_id_adopt(incoming))
        try:
            await self.app(scope, receive, send)
        finally:
            request_id_var.reset(token)
