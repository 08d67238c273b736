"""One streamed Messages call with its deadlines: first token, and the answer's total budget."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic._streaming import SSEDecoder
from django.conf import settings

from apps.llm.attempts import Meter
from apps.llm.clients import get_async_client
from apps.llm.retry import FirstTokenTimeout, StreamCut


class _EventDeadline:
    """`asyncio.timeout` around each `anext()` of a stream, with one timer per deadline instead of per event.

    The deadline covers only the awaits for the next event, never the caller's code between our
    yields (an async generator runs in the caller's task). A fresh `asyncio.timeout` per event cost a
    timer-heap push and cancel for each of the ~200 events of an answer, ~10 % of the chat path's CPU.
    Here one timer runs until the deadline moves (once, at the first token): when it fires during an
    await the task is cancelled and the await raises TimeoutError; when it fires between awaits the
    next call raises TimeoutError at once.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._limit = math.nan
        self._inside = False
        self._fired = False

    async def next(self, iterator: Any, limit: float) -> Any:
        """The next event, or TimeoutError once `time.monotonic()` reaches `limit`."""
        remaining = limit - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if limit != self._limit:
            self.close()
            self._limit = limit
            self._handle = self._loop.call_later(remaining, self._expire)
        self._task = asyncio.current_task()
        self._inside = True
        try:
            return await anext(iterator)
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if self._task is not None and self._task.uncancel() == 0:
                    raise TimeoutError from None
            raise
        finally:
            self._inside = False

    def _expire(self) -> None:
        self._handle = None
        if self._inside and self._task is not None:
            self._fired = True
            self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _open_raw_stream(client: anthropic.AsyncAnthropic, body: bytes) -> anthropic.AsyncStream[object]:
    """`messages.create(stream=True)` whose events are the decoded JSON dicts, not SDK models.

    The same request, headers, status-error mapping and SSE `error`-event handling as
    `client.messages.create(**params, stream=True)` (both go through the SDK's `post`); two costs are
    skipped. Events: `cast_to=object` returns the JSON as is instead of a pydantic model per event
    (~30 µs each, 6-8 ms of CPU per 200-token answer). The body (`chat_body`): our params are plain
    JSON, encoded by us with the system prompt's encoding reused, and passed as `content`; the SDK's
    generic preparation (a deep copy looking for file inputs, then its own encoder) of the ~60 KB
    system prompt cost ~0.4 ms of CPU on the event loop before every request (bench/ws_bench.py,
    README "Performance").
    """
    return await client.post(
        "/v1/messages",
        content=body,
        options={"headers": {"Content-Type": "application/json"}},
        cast_to=object,
        stream=True,
        stream_cls=anthropic.AsyncStream[object],  # object: the SDK returns the JSON as is
    )


class _EventReader:
    """The stream's events as JSON dicts, read from the response body by one generator that we close.

    The SDK's own iterator is a chain of seven nested async generators (SSE events, SSE chunks, body
    bytes, httpx's byte streams, httpcore's). When the SDK raises mid-stream (an `error` event) or
    the caller stops reading, the inner ones are left suspended, reachable only from the exception's
    traceback, and asyncio's finaliser closes them later: several found in one garbage-collector pass
    are closed concurrently, and closing one that another's `finally` is closing fails ("async
    generator already executing"). Here the only generator is httpx's `Response.aiter_bytes()`, whose
    `finally` closes the layers below it in order, and `aclose()` closes it in the caller's task.
    Events are decoded by the SDK's SSE decoder and errors mapped by the client's own mapping, as
    `AsyncStream.__stream__` does.
    """

    def __init__(self, client: anthropic.AsyncAnthropic, response: httpx2.Response) -> None:
        self._client = client
        self._response = response
        self._chunks = response.aiter_bytes()
        self._decoder = SSEDecoder()
        self._events: deque[dict[str, Any]] = deque()  # decoded, not yet returned
        self._partial = b""  # an incomplete last line, kept until the rest arrives
        self._error: anthropic.APIStatusError | None = None  # an `error` event: raised after the events before it

    def __aiter__(self) -> _EventReader:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._events:
            if self._error is not None:
                raise self._error
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                if not self._partial.endswith(b"\r"):
                    raise  # the end of the body (an incomplete last event is no event, as in the SDK)
                self._feed(b"", body_ended=True)  # a last line ended by a lone "\r"
                continue
            except anthropic.AnthropicError:
                raise
            except httpx2.TimeoutException as err:
                raise self._client._make_timeout_error(self._response.request, err) from err
            except Exception as err:
                raise self._client._make_connection_error(self._response.request, err) from err
            self._feed(chunk)
        return self._events.popleft()

    def _feed(self, chunk: bytes, *, body_ended: bool = False) -> None:
        lines = (self._partial + chunk).splitlines(keepends=True)
        # A line is complete at its line break; a final "\r" may be the first half of a "\r\n" split
        # across chunks, so it waits for the next chunk (or the end of the body).
        last = lines[-1] if lines else b""
        complete = last.endswith(b"\n") or (body_ended and last.endswith(b"\r"))
        self._partial = b"" if complete else last
        if self._partial:
            lines.pop()
        for line in lines:
            sse = self._decoder.decode(line.rstrip(b"\r\n").decode("utf-8"))
            if sse is None or sse.event in (None, "ping"):
                continue
            if sse.event == "error":
                try:
                    body: object = sse.json()
                    message = f"{body}"
                except ValueError:
                    body = sse.data
                    message = sse.data or f"Error code: {self._response.status_code}"
                self._error = self._client._make_status_error(message, body=body, response=self._response)
                return
            if sse.data:
                self._events.append(sse.json())

    async def aclose(self) -> None:
        """Close the body's generator (and with it httpx's and httpcore's) and the response."""
        await self._chunks.aclose()
        await self._response.aclose()


def _tool_input(partial_json: str) -> dict[str, Any]:
    """The concatenated `input_json_delta` pieces of a tool_use block: a JSON object ("" means {})."""
    value = json.loads(partial_json) if partial_json else {}
    if not isinstance(value, dict):
        raise TypeError("tool input is not a JSON object")
    return value


async def stream_once(body: bytes, meter: Meter, deadline: float) -> AsyncIterator[str]:
    """Yield the text deltas of one streamed attempt, filling `meter` (tool calls included). Raises on any failure."""
    ttft_deadline = meter.started + settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS
    client = get_async_client()

    def limit() -> float:
        return deadline if meter.ttft_ms is not None else min(deadline, ttft_deadline)

    def time_left() -> float:
        return limit() - time.monotonic()

    try:
        async with asyncio.timeout(max(time_left(), 0.0)):
            stream = await _open_raw_stream(client, body)
    except TimeoutError as exc:
        raise (FirstTokenTimeout() if time.monotonic() < deadline else exc) from None
    meter.request_id = stream.response.headers.get("request-id", "") or ""
    iterator = _EventReader(client, stream.response)
    event_deadline = _EventDeadline()
    finished = False
    tool_inputs: dict[int, list[str]] = {}  # `input_json_delta` pieces of each open tool_use block
    try:
        while True:
            try:
                event = await event_deadline.next(iterator, limit())
            except StopAsyncIteration:
                break
            except TimeoutError:
                if meter.ttft_ms is None and time.monotonic() < deadline:
                    raise FirstTokenTimeout() from None
                raise
            try:
                kind = event["type"]
                if kind == "content_block_delta":
                    delta = event["delta"]
                    if delta["type"] == "text_delta":
                        text = delta["text"]
                        if not isinstance(text, str):
                            raise TypeError("text is not a string")
                        if meter.ttft_ms is None:
                            meter.ttft_ms = meter.elapsed_ms()
                        meter.text += text
                        yield text
                    elif delta["type"] == "citations_delta":
                        meter.citations.append(dict(delta["citation"]))
                    elif delta["type"] == "input_json_delta":
                        if meter.ttft_ms is None:
                            meter.ttft_ms = meter.elapsed_ms()
                        tool_inputs[event["index"]].append(delta["partial_json"])
                elif kind == "content_block_start":
                    block = event["content_block"]
                    if block["type"] == "tool_use":
                        tool_inputs[event["index"]] = []
                        meter.tool_uses.append({"type": "tool_use", "id": block["id"], "name": block["name"]})
                elif kind == "content_block_stop":
                    pieces = tool_inputs.pop(event["index"], None)
                    if pieces is not None:
                        meter.tool_uses[-1]["input"] = _tool_input("".join(pieces))
                elif kind == "message_start":
                    meter.absorb_usage(event["message"]["usage"])
                elif kind == "message_delta":
                    meter.absorb_usage(event["usage"])
                    meter.stop_reason = event["delta"].get("stop_reason") or ""
                elif kind == "message_stop":
                    finished = True
            except (KeyError, TypeError, AttributeError) as exc:
                # The SDK's typed events would not have caught this either; treat it like invalid JSON.
                raise ValueError(f"malformed stream event: {type(exc).__name__}: {exc}") from None
    finally:
        event_deadline.close()
        await iterator.aclose()  # now, in this task: never left to the garbage collector
        await stream.close()
    if not finished:
        raise StreamCut("stream ended before message_stop")
