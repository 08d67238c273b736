"""Operational endpoints: liveness and readiness."""

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core.metrics import render_latest


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving HTTP."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_cache() -> str:
    cache.set("readyz:probe", "1", timeout=5)
    return "ok" if cache.get("readyz:probe") == "1" else "unreadable"


def _check_upstream() -> str:
    if not settings.USE_OFFLINE_UPSTREAM:
        return "not checked (hosted API)"
    response = httpx.get(f"{settings.OFFLINE_UPSTREAM_URL}/healthz", timeout=2.0)
    return "ok" if response.status_code == 200 else f"status {response.status_code}"


def readyz(request: HttpRequest) -> JsonResponse:
    """Dependencies reachable: database, cache (Redis when configured), the offline upstream when used."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("cache", _check_cache), ("upstream", _check_upstream)):
        try:
            checks[name] = check()
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" or value.startswith("not checked") for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. Restrict it at the proxy, or set METRICS_TOKEN to require a bearer token."""
    token = settings.METRICS_TOKEN
    if token and request.headers.get("Authorization", "") != f"Bearer {token}":
        return HttpResponse(status=403)
    return HttpResponse(render_latest(), content_type=CONTENT_TYPE_LATEST)


FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#1f4fd1"/>'
    '<path d="M9 22 16 8l7 14h-4l-3-6.5L13 22z" fill="#fff"/></svg>'
)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page; answer once, cached for a day, instead of a 404."""
    response = HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
