"""The chat page. Everything it shows after load comes from the websocket and the REST API."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
@ensure_csrf_cookie  # the page's fetch() calls (feedback, handoff) send the CSRF token from this cookie
@xframe_options_sameorigin  # the widget opens this page in an iframe on the site's own pages
def chat_page(request: HttpRequest) -> HttpResponse:
    context = {
        "embedded": request.GET.get("embed") == "1",
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    return render(request, "chat/chat.html", context)
