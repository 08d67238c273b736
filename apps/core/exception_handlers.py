"""Maps ApplicationError onto DRF responses; everything else keeps DRF's default handling."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.core.exceptions import ApplicationError


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body = {"code": exc.code, "detail": exc.message, **exc.extra}
        return Response(body, status=exc.status_code)
    return exception_handler(exc, context)
