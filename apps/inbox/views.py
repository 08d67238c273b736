"""The agents' inbox pages and actions (docs/inbox.md). Thin: authorise, call one selector or service,
render. Actions answer JSON to the page's script and redirect a plain form post back to the page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError, NotFound
from apps.inbox import copilot, selectors, services


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _error_response(request: HttpRequest, exc: ApplicationError, *, back: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(exc.as_frame(), status=exc.status_code)
    if exc.status_code in (403, 404):
        return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain; charset=utf-8")
    messages.error(request, exc.message)
    return redirect(back)


def agent_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Agents only: a visitor who is not logged in is sent to the login page (pages) or gets 403;
    a customer gets 403 for the inbox itself and 404 for a conversation's URLs, as for any object that
    is not theirs (even their own conversation: the agent's view of it is not theirs); an unknown
    conversation or agent is 404."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and request.method == "GET" and not _wants_json(request):
            return redirect_to_login(request.get_full_path())
        try:
            if request.user.is_authenticated and "conversation_id" in kwargs and not selectors.is_agent(request.user):
                raise NotFound("Conversation not found.", code="conversation_not_found")
            selectors.check_agent(request.user)
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            conversation_id = kwargs.get("conversation_id")
            back = reverse("inbox:conversation", args=[conversation_id]) if conversation_id else reverse("inbox:page")
            return _error_response(request, exc, back=back)

    return wrapper


def _page_context(request: HttpRequest, conversation_id: UUID | None) -> dict[str, Any]:
    context: dict[str, Any] = {"queue": selectors.queue_list(), "conversation": None}
    if conversation_id is not None:
        conversation = selectors.conversation_get_for_agent(request.user, conversation_id)
        context.update(_conversation_context(request, conversation))
    return context


def _conversation_context(request: HttpRequest, conversation: Any) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "timeline": selectors.conversation_timeline(conversation),
        "customer": selectors.customer_summary(conversation.user),
        "mine": conversation.assigned_agent_id == request.user.pk,
        "colleagues": [a for a in selectors.agents_list() if a.pk != request.user.pk],
    }


@require_GET
@agent_view
@ensure_csrf_cookie
def inbox_page(request: HttpRequest) -> HttpResponse:
    return render(request, "inbox/inbox.html", _page_context(request, None))


@require_GET
@agent_view
@ensure_csrf_cookie
def conversation_page(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    return render(request, "inbox/inbox.html", _page_context(request, conversation_id))


@require_GET
@agent_view
def queue_fragment(request: HttpRequest) -> HttpResponse:
    """The queue alone, for the page's script to swap in when the socket says it changed."""
    return render(request, "inbox/_queue.html", {"queue": selectors.queue_list()})


@require_GET
@agent_view
def conversation_fragment(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """The conversation pane alone (header, transcript, actions), for the page's script."""
    conversation = selectors.conversation_get_for_agent(request.user, conversation_id)
    return render(request, "inbox/_conversation.html", _conversation_context(request, conversation))


def _done(request: HttpRequest, conversation_id: UUID, **payload: Any) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"ok": True, **payload})
    return redirect("inbox:conversation", conversation_id)


@require_POST
@agent_view
def claim(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    services.conversation_claim(agent=request.user, conversation_id=conversation_id)
    return _done(request, conversation_id)


@require_POST
@agent_view
def assign(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    services.conversation_assign(
        agent=request.user, conversation_id=conversation_id, assignee_id=request.POST.get("assignee")
    )
    return _done(request, conversation_id)


@require_POST
@agent_view
def reply(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    message = services.agent_reply(agent=request.user, conversation_id=conversation_id, text=request.POST.get("text"))
    return _done(request, conversation_id, message_id=message.pk)


@require_POST
@agent_view
def note(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    added = services.note_add(agent=request.user, conversation_id=conversation_id, text=request.POST.get("text"))
    return _done(request, conversation_id, note_id=added.pk)


@require_POST
@agent_view
def hand_back(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    services.conversation_hand_back(agent=request.user, conversation_id=conversation_id)
    return _done(request, conversation_id)


@require_POST
@agent_view
def resolve(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    services.conversation_resolve(agent=request.user, conversation_id=conversation_id)
    return _done(request, conversation_id)


@require_POST
@agent_view
def suggest(request: HttpRequest, conversation_id: UUID) -> JsonResponse:
    """A draft reply for the agent to edit (JSON: draft, model, prompt_version); nothing is sent."""
    draft = async_to_sync(copilot.reply_suggest)(agent=request.user, conversation_id=conversation_id)
    return JsonResponse({"ok": True, "draft": draft.text, "model": draft.model, "prompt_version": draft.prompt_version})
