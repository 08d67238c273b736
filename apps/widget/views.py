"""The widget's two HTTP interfaces: the loader script for host pages and the chat frame it opens.

Both are 404 for an unknown or disabled site. The script is also 404 on any page whose origin is not
the site's; the frame is served to anyone but may be framed only by the site's origin (CSP
`frame-ancestors`, the one framing header: X-Frame-Options is left off here since it cannot name an
origin, and browsers let CSP win anyway).
"""

import json
from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from apps.core.exceptions import NotFound
from apps.widget import selectors
from apps.widget.models import Site


@cache
def _loader_source() -> str:
    path = finders.find("widget/loader.js")
    if path is None:
        raise RuntimeError("static/widget/loader.js is missing")
    return Path(path).read_text(encoding="utf-8")


def _site_or_404(key: str) -> Site:
    try:
        return selectors.site_get_enabled(key)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_GET
def loader_script(request: HttpRequest, key: str) -> HttpResponse:
    site = _site_or_404(key)
    if selectors.request_origin(request) != site.origin:
        raise Http404("This site may not load the widget.")
    config = {
        "key": site.key,
        "name": site.name,
        "colour": site.colour,
        "frame": request.build_absolute_uri(reverse("widget:frame", args=[site.key])),
    }
    # The loader is a function expression; the site's settings are its argument.
    body = f"{_loader_source().rstrip().rstrip(';')}({json.dumps(config)});\n"
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Access-Control-Allow-Origin"] = site.origin  # for <script crossorigin>
    response["Vary"] = "Origin, Referer"
    response["Cache-Control"] = "private, max-age=300"
    return response


@require_GET
@xframe_options_exempt
def chat_frame(request: HttpRequest, key: str) -> HttpResponse:
    site = _site_or_404(key)
    config = {
        "key": site.key,
        "name": site.name,
        "colour": site.colour,
        "origin": site.origin,  # the only page the frame posts its storage to
        "ws": f"/ws/widget/{site.key}/",
        "maxChars": settings.CHAT_MAX_MESSAGE_CHARS,
        "company": settings.SUPPORT_COMPANY_NAME,  # "Dana from Acme joined."
    }
    response = render(
        request,
        "widget/frame.html",
        {"config": config, "script": static("widget/frame.js"), "css": static("widget/frame.css")},
    )
    response["Content-Security-Policy"] = (
        f"default-src 'self'; frame-ancestors {site.origin}; base-uri 'none'; form-action 'none'; object-src 'none'"
    )
    response["Cache-Control"] = "no-store"
    return response
