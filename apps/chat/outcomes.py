"""What became of a conversation, per prompt version: resolved, handed off, reopened.

Definitions (Intercom's resolution rate, on our data):

- **handed off**: a ticket was opened for the conversation (the customer asked for a human, or the
  assistant could not answer) or it is marked as needing a human;
- **reopened**: the customer wrote again more than REOPEN_AFTER after the assistant's previous answer;
- **resolved**: not handed off, not reopened, and either the customer confirmed it helped (a thumbs up on
  an answer) or asked nothing more for REOPEN_AFTER after the last answer. A conversation whose last
  answer is younger than that, without a thumbs up, is still *pending* and counts in no rate.

Cost per resolved conversation is the call-log cost of the version's conversations (cache writes and
reads and the batch discount are priced in each row) divided by its resolved conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

REOPEN_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Timeline:
    """One conversation's events, oldest first: ("user" | "assistant", when)."""

    turns: tuple[tuple[str, datetime], ...]
    thumbs_up: bool = False
    handed_off: bool = False


@dataclass(frozen=True)
class Outcome:
    resolved: bool
    handed_off: bool
    reopened: bool
    pending: bool


def conversation_outcome(timeline: Timeline, *, now: datetime) -> Outcome:
    reopened = False
    last_answer: datetime | None = None
    for role, when in timeline.turns:
        if role == "assistant":
            last_answer = when
        elif last_answer is not None and when - last_answer > REOPEN_AFTER:
            reopened = True
    quiet = last_answer is not None and now - last_answer >= REOPEN_AFTER
    ended_on_answer = bool(timeline.turns) and timeline.turns[-1][0] == "assistant"
    settled = timeline.thumbs_up or (quiet and ended_on_answer)
    resolved = not timeline.handed_off and not reopened and settled
    pending = not resolved and not timeline.handed_off and not reopened and not settled
    return Outcome(resolved=resolved, handed_off=timeline.handed_off, reopened=reopened, pending=pending)


@dataclass
class VersionOutcomes:
    version_id: int
    conversations: int = 0
    resolved: int = 0
    handed_off: int = 0
    reopened: int = 0
    pending: int = 0
    cost_usd: Decimal = Decimal(0)
    conversation_ids: list[str] = field(default_factory=list)

    @property
    def decided(self) -> int:
        return self.conversations - self.pending

    def rate(self, count: int) -> float | None:
        return count / self.decided if self.decided else None

    @property
    def cost_per_resolved(self) -> Decimal | None:
        return self.cost_usd / self.resolved if self.resolved else None


def version_outcomes(*, since: datetime, until: datetime, now: datetime) -> dict[int, VersionOutcomes]:
    """Prompt version id → outcomes of the conversations started in [since, until)."""
    from apps.accounts.models import SupportTicket
    from apps.chat.models import Conversation, Feedback, Message
    from apps.llm.models import LLMCall

    conversations = list(
        Conversation.objects.filter(created_at__gte=since, created_at__lt=until, prompt_version__isnull=False).values(
            "id", "prompt_version_id", "status"
        )
    )
    ids = [c["id"] for c in conversations]
    turns: dict[object, list[tuple[str, datetime]]] = {i: [] for i in ids}
    for conversation_id, role, created_at in (
        Message.objects.filter(conversation_id__in=ids)
        .order_by("created_at", "id")
        .values_list("conversation_id", "role", "created_at")
    ):
        turns[conversation_id].append((role, created_at))
    thumbs = set(
        Feedback.objects.filter(message__conversation_id__in=ids, rating="up").values_list(
            "message__conversation_id", flat=True
        )
    )
    tickets = set(
        SupportTicket.objects.filter(conversation_id__in=[str(i) for i in ids]).values_list(
            "conversation_id", flat=True
        )
    )
    costs = dict(
        LLMCall.objects.filter(conversation_id__in=[str(i) for i in ids])
        .values("conversation_id")
        .annotate(total=Sum("cost_usd"))
        .values_list("conversation_id", "total")
    )
    figures: dict[int, VersionOutcomes] = {}
    for conversation in conversations:
        key = conversation["id"]
        handed = str(key) in tickets or conversation["status"] == Conversation.Status.NEEDS_HUMAN
        outcome = conversation_outcome(
            Timeline(turns=tuple(turns[key]), thumbs_up=key in thumbs, handed_off=handed), now=now
        )
        mine = figures.setdefault(conversation["prompt_version_id"], VersionOutcomes(conversation["prompt_version_id"]))
        mine.conversations += 1
        mine.resolved += outcome.resolved
        mine.handed_off += outcome.handed_off
        mine.reopened += outcome.reopened
        mine.pending += outcome.pending
        mine.cost_usd += Decimal(costs.get(str(key)) or 0)
    return figures
