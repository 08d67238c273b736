"""Abuse and spend limits for widget chats, checked before a question reaches the model.

Rate limits count in the Django cache (Redis when REDIS_URL is set, so every process shares them);
spend is summed from the call log's exact cost, which every process writes. Past a rate limit the
visitor waits; past the conversation cap or a spend cap the chat offers to leave a message instead.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from apps.core.exceptions import ApplicationError
from apps.core.ratelimit import rate_limit_hit, rate_limit_hit_async
from apps.widget import selectors
from apps.widget.models import Site


@dataclass(frozen=True)
class LimitHit:
    code: str
    message: str
    leave_message: bool  # offer the visitor to leave a message for a human instead
    retry_after: int | None = None

    def as_error(self) -> ApplicationError:
        extra: dict[str, Any] = {"leave_message": self.leave_message}
        if self.retry_after is not None:
            extra["retry_after"] = self.retry_after
        return ApplicationError(self.message, code=self.code, extra=extra)


RATE_LIMITED = LimitHit("rate_limited", "Too many messages; wait a minute.", leave_message=False, retry_after=60)
CONVERSATION_FULL = LimitHit(
    "conversation_limit", "This conversation has reached its length limit.", leave_message=True
)
SPEND_CAP = LimitHit("spend_cap", "The assistant is not available right now.", leave_message=True)


async def rate_limit_check(*, visitor_id: object, ip: str) -> LimitHit | None:
    """Count one question for the visitor and for the IP address; a hit past either limit."""
    over_visitor = await rate_limit_hit_async(
        key=f"widget:visitor:{visitor_id}", limit=settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE
    )
    over_ip = await rate_limit_hit_async(key=f"widget:ip:{ip}", limit=settings.WIDGET_IP_RATE_LIMIT_PER_MINUTE)
    return RATE_LIMITED if over_visitor or over_ip else None


def new_visitor_allowed(*, ip: str) -> bool:
    """Whether `ip` may create another visitor this hour (each one is a user row)."""
    return not rate_limit_hit(
        key=f"widget:new-visitor:{ip}", limit=settings.WIDGET_NEW_VISITORS_PER_IP_PER_HOUR, window_seconds=3600
    )


def site_daily_cap(site: Site) -> Decimal:
    if site.daily_spend_cap_usd is not None:
        return site.daily_spend_cap_usd
    return Decimal(str(settings.WIDGET_SITE_DAILY_SPEND_CAP_USD))


def question_check(
    *, site: Site, conversation_id: object, user: AbstractBaseUser, identified: bool, answerer: str = ""
) -> LimitHit | None:
    """The cap a new question in `conversation_id` would go past, if any (reads only; run off the loop).

    A cap is reached once spend is at or over it: the question that crosses it is answered, the next
    is not (an answer's cost is known only after it). A question for a person (the conversation is with
    the support team, or `answerer` chooses one up front) calls no model: no cap applies, so a visitor
    past a cap still reaches the team (the rate limits still count it).
    """
    if selectors.question_goes_to_person(conversation_id=conversation_id, answerer=answerer):
        return None
    if selectors.conversation_question_count(conversation_id) >= settings.WIDGET_CONVERSATION_MAX_QUESTIONS:
        return CONVERSATION_FULL
    if selectors.site_spend_today(site) >= site_daily_cap(site):
        return SPEND_CAP
    account_cap = Decimal(str(settings.WIDGET_ACCOUNT_DAILY_SPEND_CAP_USD))
    if identified and selectors.user_spend_today(user) >= account_cap:
        return SPEND_CAP
    return None
