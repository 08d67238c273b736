"""Static files through WhiteNoise, streamed to an ASGI server without a sync iterator.

WhiteNoise (6.x) answers with a FileResponse over an open file: a synchronous iterator. Served by
Django's ASGI handler, that iterator is consumed in a worker thread all at once, with a warning
("StreamingHttpResponse must consume synchronous iterators…") for every file. Here the same response
streams through an asynchronous iterator whose blocking reads run in a thread, block by block: the
event loop never waits on the disk, and a large file is never held in memory whole. Under WSGI (the
sync test client) the response is left as WhiteNoise made it, since WSGI needs a sync iterator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from whitenoise.middleware import WhiteNoiseFileResponse, WhiteNoiseMiddleware

_read_block = sync_to_async(next, thread_sensitive=False)


async def _blocks(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (block := await _read_block(iterator, None)) is not None:
        yield block


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's middleware, with its file responses made asynchronous for an ASGI request."""

    @staticmethod
    def serve(static_file, request: HttpRequest) -> WhiteNoiseFileResponse:
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest):
            # The file stays registered for closing (FileResponse did it); only the iteration changes.
            response.streaming_content = _blocks(iter(response.streaming_content))
        return response
