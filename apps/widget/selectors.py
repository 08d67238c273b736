"""Reads: sites by their public key, the origin a request comes from, a visitor's language, today's spend."""

import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.chat.services import ANSWERER_PERSON
from apps.core.exceptions import NotFound
from apps.knowledge.models import Language
from apps.llm.models import LLMCall
from apps.widget.identity import visitor_token_read
from apps.widget.models import Site, SiteConversation, Visitor, origin_normalise


def site_get_enabled(key: object) -> Site:
    """The enabled site with public key `key`. Raises `NotFound` for an unknown, malformed or disabled one."""
    site = Site.objects.filter(key=key, enabled=True).first() if isinstance(key, str) and len(key) <= 32 else None
    if site is None:
        raise NotFound("Unknown site.", code="site_not_found")
    return site


def request_origin(request: HttpRequest) -> str:
    """The origin of the page that made the request: `Origin` (sent for a script with `crossorigin`),
    else the origin of `Referer` (browsers send it for cross-origin scripts by default); "" if neither."""
    origin = request.headers.get("Origin", "")
    if origin and origin != "null":
        return origin_normalise(origin)
    referer = request.headers.get("Referer", "")
    if not referer:
        return ""
    parts = urlsplit(referer)
    return origin_normalise(f"{parts.scheme}://{parts.netloc}") if parts.scheme and parts.netloc else ""


MAX_LANGUAGE_TAGS = 10  # a browser lists a handful; more is not a browser


def _language_code(tag: str) -> str:
    """The served language of one language tag ("de-AT" -> "de"), else ""."""
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if primary in Language.values else ""


def visitor_language(*, requested: object, accept_language: str) -> str:
    """The first language the assistant serves among the browser's: `requested` (navigator.languages,
    comma-separated, sent by the widget), else the websocket handshake's `Accept-Language` by its
    q-values; "" when neither names one (the model then goes by what the visitor writes)."""
    if isinstance(requested, str):
        for tag in requested.split(",")[:MAX_LANGUAGE_TAGS]:
            if code := _language_code(tag):
                return code
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")[:MAX_LANGUAGE_TAGS]):
        tag, _, params = part.partition(";")
        try:
            quality = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        if (code := _language_code(tag)) and quality > 0:
            weighted.append((-quality, index, code))
    return min(weighted)[2] if weighted else ""


def _day_start() -> datetime.datetime:
    now = timezone.now().astimezone(datetime.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _cost(calls: "object") -> Decimal:
    return calls.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def site_spend_today(site: Site) -> Decimal:
    """USD spent on model calls today (UTC) for conversations held on `site`, from the call log's exact cost.

    Only conversations active today can have calls today (every question updates `updated_at`).
    """
    start = _day_start()
    keys = SiteConversation.objects.filter(site=site, conversation__updated_at__gte=start).values("conversation_key")
    return _cost(LLMCall.objects.filter(created_at__gte=start, conversation_id__in=keys))


def user_spend_today(user: AbstractBaseUser) -> Decimal:
    """USD spent on model calls today (UTC) in all of `user`'s conversations (widget or not)."""
    start = _day_start()
    ids = [str(pk) for pk in Conversation.objects.filter(user=user, updated_at__gte=start).values_list("pk", flat=True)]
    if not ids:
        return Decimal(0)
    return _cost(LLMCall.objects.filter(created_at__gte=start, conversation_id__in=ids))


def conversation_question_count(conversation_id: object) -> int:
    return Message.objects.filter(conversation_id=conversation_id, role=Message.Role.USER).count()


def question_goes_to_person(*, conversation_id: object, answerer: str) -> bool:
    """Whether a question sent now is for the support team, not the model: a person was asked for or owns
    the conversation, or a person is chosen (`answerer`) before its first message while the choice is on.
    The same rule as `chat.services.message_submit`, read without the lock (a limit check only)."""
    conversation = Conversation.objects.filter(pk=conversation_id).only("status", "handoff_source").first()
    if conversation is None:
        return False
    if conversation.humans_answer:
        return True
    return (
        answerer == ANSWERER_PERSON
        and settings.CHAT_OFFER_HUMAN_CHOICE
        and not Message.objects.filter(conversation_id=conversation_id).exists()
    )


def visitor_token_names_visitor(*, site: Site, token: object) -> bool:
    """Whether `token` is a valid token of an existing visitor of `site` (else connecting makes a new one)."""
    claim = visitor_token_read(token, site_id=site.pk)
    return claim is not None and Visitor.objects.filter(pk=claim.visitor_id, site=site).exists()
