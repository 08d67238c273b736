"""Reading a streamed answer: every event whatever the chunking, and nothing left for the garbage collector."""

import asyncio
import contextlib
import json
import sys
import time
import weakref

import anthropic
import httpx2
import pytest

from apps.llm.attempts import Meter
from apps.llm.streaming import _EventReader, stream_once
from tests.conftest import set_faults

EVENTS = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Grüße, 世界 👋"}},
    {"type": "message_stop"},
]


def sse(events: list[dict], newline: bytes = b"\n") -> bytes:
    body = b": a comment\n" + b"event: ping\ndata: {}\n\n"
    for event in events:
        body += b"event: " + event["type"].encode() + newline
        body += b"data: " + json.dumps(event, ensure_ascii=False).encode() + newline + newline
    return body


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def reader(chunks: list[bytes]) -> tuple[_EventReader, Chunks]:
    stream = Chunks(chunks)
    request = httpx2.Request("POST", "http://upstream.test/v1/messages")
    response = httpx2.Response(200, stream=stream, request=request)
    return _EventReader(anthropic.AsyncAnthropic(api_key="test", base_url="http://upstream.test"), response), stream


async def read_all(events: _EventReader) -> list[dict]:
    try:
        return [event async for event in events]
    finally:
        await events.aclose()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 10_000])
async def test_every_event_whatever_the_chunk_boundaries(newline, size):
    body = sse(EVENTS, newline)
    events, stream = reader([body[i : i + size] for i in range(0, len(body), size)])
    assert await read_all(events) == EVENTS  # split lines, "\r\n" across chunks, a split UTF-8 character
    assert stream.closed


async def test_an_event_cut_before_its_blank_line_is_not_an_event():
    events, _ = reader([sse(EVENTS).removesuffix(b"\n")])
    assert await read_all(events) == EVENTS[:-1]  # as in the SDK's decoder and the SSE standard


async def test_an_error_event_comes_after_the_events_before_it():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body = sse(EVENTS[:2]) + b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n" + sse(EVENTS[2:])
    events, stream = reader([body])
    assert await anext(events) == EVENTS[0] and await anext(events) == EVENTS[1]
    with pytest.raises(anthropic.APIStatusError) as raised:
        await anext(events)
    assert raised.value.body == error  # the SDK's own error mapping
    await events.aclose()
    assert stream.closed


@contextlib.contextmanager
def generators_started():
    """Weak references to every async generator first iterated inside the block."""
    started: list[weakref.ref] = []
    hooks = sys.get_asyncgen_hooks()

    def firstiter(generator) -> None:
        started.append(weakref.ref(generator))
        if hooks.firstiter is not None:
            hooks.firstiter(generator)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=hooks.finalizer)
    try:
        yield started
    finally:
        sys.set_asyncgen_hooks(*hooks)


def left_suspended(started: list[weakref.ref]) -> list[str]:
    """Client-side generators (the SDK's, httpx's) not run to their end: the garbage collector would close them."""
    return [
        generator.__qualname__
        for generator in (ref() for ref in started)
        if generator is not None
        and generator.ag_frame is not None
        and ("anthropic" in generator.ag_code.co_filename or "httpx" in generator.ag_code.co_filename)
    ]


BODY = json.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "How do I reset my password?"}],
    }
).encode()


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["error_event", "dropped_connection", "caller_stops_reading", "complete"])
async def test_an_attempt_leaves_no_generator_for_the_garbage_collector(ending, llm_upstream):
    """A stream left to asyncio's finaliser has its nested generators closed concurrently (flaky errors)."""
    if ending in ("error_event", "dropped_connection"):
        cut_mode = "error" if ending == "error_event" else "drop"
        set_faults(llm_upstream, {"cut_stream_after_tokens": 3, "cut_mode": cut_mode})
    meter = Meter(started=time.monotonic())
    with generators_started() as started:
        with contextlib.suppress(anthropic.APIError):
            async with contextlib.aclosing(stream_once(BODY, meter, time.monotonic() + 10)) as texts:
                async for _ in texts:
                    if ending == "caller_stops_reading":
                        break
        await asyncio.sleep(0)
        assert started  # the hook saw the stream's generators
        assert left_suspended(started) == []
    if ending == "complete":
        assert meter.stop_reason == "end_turn"
