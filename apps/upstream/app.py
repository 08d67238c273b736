"""The Starlette ASGI app: Anthropic-compatible endpoints, control endpoints and the request pipeline.

Every `/v1/*` request goes through `_run_api_call`: size limit → auth → `anthropic-version` → handler,
with one `request-id` per request, the JSON error envelope for any `UpstreamError`, a request-log entry
and counters. `POST /v1/messages` additionally passes through fault injection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .batches import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, validate_batch_body
from .clock import rfc3339
from .config import EmulatorConfig
from .errors import UpstreamError, error_body, invalid_request, new_id
from .faults import FaultConfig
from .generation import Generation, generate, stream_events
from .prompt import count_prompt_tokens
from .state import EmulatorState, redact_headers
from .validation import (
    ensure_known_model,
    validate_api_version,
    validate_count_tokens_body,
    validate_create_body,
)

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
RATE_LIMIT_REQUESTS = 4_000
RATE_LIMIT_TOKENS = 2_000_000
RESULTS_CHUNK_BYTES = 64 * 1024
_DROPPED_STREAM_LOG = "ASGI callable returned without completing response."


@dataclass
class ApiCall:
    """One authenticated `/v1` request and what the pipeline learns about it while handling it."""

    request: Request
    raw_body: bytes
    api_version: str
    request_id: str
    model: str | None = None
    usage: dict[str, Any] | None = None
    log_entry: dict[str, Any] = field(default_factory=dict)

    def json_body(self) -> Any:
        try:
            return json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError) as error:
            raise invalid_request(f"There was an error parsing the body of your request: {error}") from None


Handler = Callable[[ApiCall], Awaitable[Response]]


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    _silence_intentional_stream_drops()
    api = _Api(state)
    control = _Control(state)
    routes = [
        Route("/healthz", lambda request: JSONResponse({"status": "ok"}), methods=["GET"]),
        Route("/v1/messages", api.endpoint(api.create_message, "messages"), methods=["POST"]),
        Route("/v1/messages/count_tokens", api.endpoint(api.count_tokens, "count_tokens"), methods=["POST"]),
        Route(
            "/v1/messages/batches",
            api.endpoint(api.create_batch, "batches.create", max_bytes=config.max_batch_request_bytes),
            methods=["POST"],
        ),
        Route("/v1/messages/batches", api.endpoint(api.list_batches, "batches.list"), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", api.endpoint(api.retrieve_batch, "batches.retrieve"), methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", api.endpoint(api.delete_batch, "batches.delete"), methods=["DELETE"]),
        Route(
            "/v1/messages/batches/{batch_id}/cancel", api.endpoint(api.cancel_batch, "batches.cancel"), methods=["POST"]
        ),
        Route(
            "/v1/messages/batches/{batch_id}/results",
            api.endpoint(api.batch_results, "batches.results"),
            methods=["GET"],
        ),
        Route("/_control/faults", control.guarded(control.get_faults), methods=["GET"]),
        Route("/_control/faults", control.guarded(control.put_faults), methods=["PUT"]),
        Route("/_control/reset", control.guarded(control.reset), methods=["POST"]),
        Route("/_control/requests", control.guarded(control.requests), methods=["GET"]),
        Route("/_control/stats", control.guarded(control.stats), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.emulator = state  # in-process access for tests (cache, clock, batches)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods get the API's JSON envelope rather than Starlette's plain text."""
    status = getattr(exc, "status_code", 404)
    message = "Not found" if status == 404 else f"Method {request.method} not allowed for {request.url.path}"
    return _error_response(UpstreamError(status, message), new_id("req_"))


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(payload, status_code=status, headers=headers, media_type="application/json")


def _error_response(error: UpstreamError, request_id: str) -> Response:
    return _json(error_body(error.status, error.message, request_id), error.status, error.headers)


class _Api:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.config = state.config

    # -- pipeline ---------------------------------------------------------------------------------

    def endpoint(
        self, handler: Handler, name: str, max_bytes: int | None = None
    ) -> Callable[[Request], Awaitable[Response]]:
        limit = max_bytes if max_bytes is not None else self.config.max_request_bytes

        async def run(request: Request) -> Response:
            return await self._run_api_call(request, handler, name, limit)

        return run

    async def _run_api_call(self, request: Request, handler: Handler, name: str, max_bytes: int) -> Response:
        request_id = new_id("req_")
        declared_length = int(request.headers.get("content-length") or 0)
        raw_body = b"" if declared_length > max_bytes else await request.body()
        call = ApiCall(request, raw_body, request.headers.get("anthropic-version", ""), request_id)
        call.log_entry = self._log_entry(request, raw_body, declared_length, request_id)
        self.state.request_log.add(call.log_entry)
        try:
            if max(declared_length, len(raw_body)) > max_bytes:
                raise UpstreamError(413, f"Request exceeds the maximum allowed number of bytes ({max_bytes}).")
            self._authenticate(request)
            validate_api_version(call.api_version or None)
            response = await handler(call)
        except UpstreamError as error:
            response = _error_response(error, request_id)
        response.headers["request-id"] = request_id
        call.log_entry["status"] = response.status_code
        call.log_entry["model"] = call.model
        self.state.stats.record(name, response.status_code, call.model, call.usage)
        return response

    def _log_entry(self, request: Request, raw_body: bytes, declared_length: int, request_id: str) -> dict[str, Any]:
        size = max(declared_length, len(raw_body))
        body: Any
        if size > self.config.logged_body_max_bytes or not raw_body:
            body = {"_omitted": True, "bytes": size} if size else None
        else:
            body = raw_body  # parsed when the log is read (RequestLog.recent)
        return {
            "request_id": request_id,
            "time": rfc3339(self.config.clock.time()),
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": redact_headers(dict(request.headers)),
            "body": body,
            "status": None,
            "model": None,
        }

    def _authenticate(self, request: Request) -> None:
        """SDK 0.x/1.x send `x-api-key`; SDK 2.x sends `Authorization: Bearer`. Both are accepted."""
        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if not key and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key:
            raise UpstreamError(401, "x-api-key header is required")
        if self.config.api_key is not None and key != self.config.api_key:
            raise UpstreamError(401, "invalid x-api-key")

    # -- messages ---------------------------------------------------------------------------------

    async def create_message(self, call: ApiCall) -> Response:
        body = call.json_body()
        validate_create_body(body, call.api_version)
        ensure_known_model(body["model"], self.config.models)
        call.model = body["model"]
        faults = self.state.faults.config.for_model(call.model)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        self._raise_injected_error(call.model, faults)
        streaming = bool(body.get("stream"))
        malformed = self.state.faults.take_malformed(faults)
        if malformed in ("empty_body", "invalid_json"):
            return _malformed_response(malformed, streaming)

        generation = generate(
            body,
            config=self.config,
            cache=self.state.cache,
            prose_instead_of_json=malformed == "prose_instead_of_json",
        )
        call.usage = generation.usage_dict()
        headers = self._rate_limit_headers(remaining_requests=RATE_LIMIT_REQUESTS - 1)
        if streaming:
            return _SSEResponse(_paced_events(generation, faults), headers=headers)
        # A non-streaming call returns only when the whole answer has been "generated".
        generation_seconds = (faults.first_token_ms + faults.token_ms * generation.output_tokens) / 1000
        if generation_seconds:
            await asyncio.sleep(generation_seconds)
        return _json(generation.message(), headers=headers)

    def _raise_injected_error(self, model: str, faults: FaultConfig) -> None:
        forced = self.state.faults.take_forced_error(model)
        status = forced.status if forced else self.state.faults.roll_error_status(faults)
        if status is None:
            return
        headers: dict[str, str] = {}
        if status in (429, 529):
            headers["retry-after"] = _seconds_header(faults.retry_after_seconds)
        if status == 429:
            headers.update(self._rate_limit_headers(remaining_requests=0))
        raise UpstreamError(status, forced.message if forced else None, headers)

    def _rate_limit_headers(self, remaining_requests: int) -> dict[str, str]:
        reset = rfc3339(self.config.clock.time() + 60)
        remaining_tokens = RATE_LIMIT_TOKENS if remaining_requests else 0
        headers: dict[str, str] = {}
        for kind, limit, remaining in (
            ("requests", RATE_LIMIT_REQUESTS, remaining_requests),
            ("tokens", RATE_LIMIT_TOKENS, remaining_tokens),
            ("input-tokens", RATE_LIMIT_TOKENS, remaining_tokens),
            ("output-tokens", RATE_LIMIT_TOKENS // 5, remaining_tokens // 5),
        ):
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset
        return headers

    async def count_tokens(self, call: ApiCall) -> Response:
        body = call.json_body()
        validate_count_tokens_body(body, call.api_version)
        ensure_known_model(body["model"], self.config.models)
        call.model = body["model"]
        return _json({"input_tokens": count_prompt_tokens(body)})

    # -- batches ----------------------------------------------------------------------------------

    async def create_batch(self, call: ApiCall) -> Response:
        body = call.json_body()
        items = validate_batch_body(body, self.config.max_batch_requests)
        del body  # the store keeps compact bytes; let the parsed tree go
        faults = self.state.faults.config
        batch = self.state.batches.create(
            items,
            api_version=call.api_version,
            processing_seconds=self.state.batch_processing_seconds(),
            error_rate=faults.batch_error_rate,
            expire_rate=faults.batch_expire_rate,
        )
        if faults.batch_create_latency_ms:
            await asyncio.sleep(faults.batch_create_latency_ms / 1000)
        return _json(batch.to_json(None))

    async def retrieve_batch(self, call: ApiCall) -> Response:
        batch_id = call.request.path_params["batch_id"]
        batch = await anyio.to_thread.run_sync(self.state.batches.get, batch_id)
        return _json(batch.to_json(self._results_url(call.request, batch_id)))

    async def list_batches(self, call: ApiCall) -> Response:
        query = call.request.query_params
        limit = _int_param(query.get("limit"), DEFAULT_LIST_LIMIT, "limit")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid_request(f"limit: Input should be between 1 and {MAX_LIST_LIMIT}")
        page = await anyio.to_thread.run_sync(
            self.state.batches.list_page, limit, query.get("after_id"), query.get("before_id")
        )
        data = [batch.to_json(self._results_url(call.request, batch.id)) for batch in page["window"]]
        return _json(
            {
                "data": data,
                "has_more": page["has_more"],
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def cancel_batch(self, call: ApiCall) -> Response:
        batch_id = call.request.path_params["batch_id"]
        batch = await anyio.to_thread.run_sync(self.state.batches.cancel, batch_id)
        return _json(batch.to_json(self._results_url(call.request, batch_id)))

    async def delete_batch(self, call: ApiCall) -> Response:
        batch_id = call.request.path_params["batch_id"]
        await anyio.to_thread.run_sync(self.state.batches.delete, batch_id)
        return _json({"id": batch_id, "type": "message_batch_deleted"})

    async def batch_results(self, call: ApiCall) -> Response:
        batch_id = call.request.path_params["batch_id"]
        lines = await anyio.to_thread.run_sync(self.state.batches.result_lines, batch_id)
        return StreamingResponse(_chunked(lines), media_type="application/x-jsonl")

    def _results_url(self, request: Request, batch_id: str) -> str:
        """Absolute, because the SDK GETs `results_url` verbatim."""
        base = self.config.public_base_url or str(request.base_url)
        return f"{base.rstrip('/')}/v1/messages/batches/{batch_id}/results"


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_request(f"{name}: Input should be a valid integer") from None


def _chunked(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Group JSONL lines into ~64 KB writes instead of one write per line."""
    buffer: list[bytes] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= RESULTS_CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


# -- streaming ------------------------------------------------------------------------------------


class _StreamDropped(Exception):
    """Raised inside the event generator to close the connection without finishing the response."""


async def _paced_events(generation: Generation, faults: FaultConfig) -> AsyncIterator[bytes]:
    """SSE bytes with `first_token_ms` / `token_ms` pacing and the configured mid-stream cut.

    Delta i is due `first_token_ms + i × token_ms` after the stream starts and is never sent earlier.
    Events that go out together are written together: the buffer is flushed whenever the stream waits
    (and at the end), so an unpaced answer is one write, a paced one a write per delta, and a stream
    that fell behind (a busy server) catches up with one write instead of a sleep per delta — like the
    real API, whose tokens arrive in bursts under load.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending: list[bytes] = []
    deltas_sent = 0
    for event in stream_events(generation):
        if event.is_token:
            if faults.cut_stream_after_tokens is not None and deltas_sent >= faults.cut_stream_after_tokens:
                if faults.cut_mode == "drop":
                    if pending:
                        yield b"".join(pending)
                    raise _StreamDropped
                pending.append(_OVERLOADED_EVENT)
                break
            if faults.first_token_ms or faults.token_ms:
                due = started + (faults.first_token_ms + deltas_sent * faults.token_ms) / 1000
                wait = due - loop.time()
                if wait > 0:
                    if pending:
                        yield b"".join(pending)
                        pending.clear()
                    await asyncio.sleep(wait)
            deltas_sent += 1
        pending.append(event.encode())
    if pending:
        yield b"".join(pending)


_OVERLOADED_EVENT = (
    "event: error\ndata: "
    + json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    + "\n\n"
).encode()


class _SSEResponse(StreamingResponse):
    """A text/event-stream response that can also end by dropping the connection mid-body."""

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        super().__init__(
            events,
            media_type="text/event-stream; charset=utf-8",
            headers={"cache-control": "no-cache", **(headers or {})},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _StreamDropped:
            _DropLogFilter.expected += 1
            return  # without the final body message: the server closes the connection mid-response
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _malformed_response(mode: str, streaming: bool) -> Response:
    if mode == "empty_body":
        return Response(b"", media_type="text/event-stream" if streaming else "application/json")
    if streaming:
        return Response(
            b'event: message_start\ndata: {"type": "message_start", "message": {"id": \n\n',
            media_type="text/event-stream",
        )
    return Response(
        b'{"id": "msg_01truncated", "type": "message", "content": [{"type": "te', media_type="application/json"
    )


class _DropLogFilter(logging.Filter):
    """Uvicorn logs an error when a response is left unfinished; for injected drops that is the point."""

    expected = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if _DropLogFilter.expected and record.getMessage() == _DROPPED_STREAM_LOG:
            _DropLogFilter.expected -= 1
            return False
        return True


def _silence_intentional_stream_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropLogFilter) for existing in logger.filters):
        logger.addFilter(_DropLogFilter())


# -- control --------------------------------------------------------------------------------------


class _Control:
    """`/_control/*`: token-guarded when a control token is configured, else loopback-only."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            token = self.state.config.control_token
            if token is not None:
                allowed = request.headers.get("x-control-token") == token
            else:
                allowed = request.client is not None and request.client.host in LOOPBACK_HOSTS
            if not allowed:
                return _error_response(
                    UpstreamError(403, "control endpoints: missing or invalid x-control-token"), new_id("req_")
                )
            try:
                return await handler(request)
            except UpstreamError as error:
                return _error_response(error, new_id("req_"))

        return run

    async def get_faults(self, request: Request) -> Response:
        return _json(self.state.faults.config.to_dict())

    async def put_faults(self, request: Request) -> Response:
        try:
            config = FaultConfig.from_dict(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as error:
            raise invalid_request(f"faults: {error}") from None
        self.state.faults.replace(config)
        return _json(config.to_dict())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return _json({"status": "reset"})

    async def requests(self, request: Request) -> Response:
        limit = _int_param(request.query_params.get("limit"), 50, "limit")
        return _json({"data": self.state.request_log.recent(limit)})

    async def stats(self, request: Request) -> Response:
        return _json(self.state.stats.snapshot())
