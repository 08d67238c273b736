"""Request id on every log line and response, and HTTP request counting."""

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.logging import request_id_var
from apps.core.metrics import HTTP_REQUESTS

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Adopt a well-formed incoming X-Request-ID (from a proxy) or make one; echo it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        HTTP_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response
