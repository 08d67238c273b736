"""The API's error envelope and the status ↔ error-type table the SDK maps to exception classes."""

from __future__ import annotations

import random
import string
from typing import Any

ERROR_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGE_BY_STATUS: dict[int, str] = {
    400: "Invalid request",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    409: "The request conflicts with the current state of the resource.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed the rate limit for your organization. Please try again later.",
    500: "Internal server error",
    504: "Request timed out before completing.",
    529: "Overloaded",
}

_ID_ALPHABET = string.ascii_letters + string.digits
# Ids only need to be unique, not unguessable; a seeded-from-urandom PRNG is much faster than `secrets`.
_ID_RANDOM = random.Random()


def new_id(prefix: str, length: int = 24) -> str:
    """Ids shaped like the real ones (`msg_01…`, `req_01…`, `msgbatch_01…`)."""
    return prefix + "01" + "".join(_ID_RANDOM.choices(_ID_ALPHABET, k=length - 2))


def error_type_for_status(status: int) -> str:
    return ERROR_TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_object(status: int, message: str | None = None) -> dict[str, str]:
    return {"type": error_type_for_status(status), "message": message or DEFAULT_MESSAGE_BY_STATUS.get(status, "Error")}


def error_body(status: int, message: str | None, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": error_object(status, message), "request_id": request_id}


class UpstreamError(Exception):
    """Raised anywhere in request handling; the app turns it into the JSON error envelope."""

    def __init__(self, status: int, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message or DEFAULT_MESSAGE_BY_STATUS.get(status, "Error")
        self.headers = headers or {}
        super().__init__(f"{status} {self.message}")

    @property
    def error_type(self) -> str:
        return error_type_for_status(self.status)


def invalid_request(message: str) -> UpstreamError:
    return UpstreamError(400, message)
