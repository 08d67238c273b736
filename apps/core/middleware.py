"""Request id on every log line and response, and HTTP request counting."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.logging import REQUEST_ID_HEADER, request_id_adopt, request_id_var
from apps.core.metrics import HTTP_REQUESTS


class RequestIdMiddleware:
    """Adopt a well-formed incoming X-Request-ID (from a proxy) or make one; echo it on the response.

    Under ASGI the id is already set (`RequestIdASGIMiddleware`, so uvicorn's access line has it too)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_var.get() or request_id_adopt(request.headers.get(REQUEST_ID_HEADER, ""))
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        HTTP_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response
