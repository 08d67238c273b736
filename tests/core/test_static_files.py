"""Static files under ASGI stream through an asynchronous iterator (no sync-iterator warning)."""

from pathlib import Path

from django.conf import settings

CHAT_JS = Path(settings.BASE_DIR) / "static" / "chat" / "chat.js"


async def test_a_static_file_is_streamed_asynchronously_under_asgi(async_client):
    response = await async_client.get("/static/chat/chat.js")
    assert response.status_code == 200
    assert response.is_async  # Django's ASGI handler would otherwise warn and drain it in a thread
    body = b"".join([block async for block in response.streaming_content])
    response.close()  # closes the file, as the ASGI handler does
    assert body == CHAT_JS.read_bytes()
    assert response["Content-Length"] == str(len(body))


def test_the_sync_test_client_still_gets_the_file(client):
    response = client.get("/static/chat/chat.js")
    assert response.status_code == 200 and not response.is_async
    body = b"".join(response.streaming_content)
    response.close()
    assert body == CHAT_JS.read_bytes()
