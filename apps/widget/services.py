"""Writes: visitors (anonymous or verified), which site a conversation was held on, messages left."""

import logging
import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.accounts.models import CustomerAccount, SupportTicket
from apps.accounts.services import ticket_open
from apps.chat.models import Conversation
from apps.chat.selectors import conversation_get_for_user, conversation_transcript
from apps.chat.services import check_message_text, conversation_handoff, conversation_owner_change
from apps.core.exceptions import ApplicationError, NotFound
from apps.widget.identity import IdentityError, identity_check, visitor_token_make, visitor_token_read
from apps.widget.models import Site, SiteConversation, Visitor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WidgetIdentity:
    """Who is chatting in a widget: the visitor (always), and the user whose conversations and account
    context the chat uses — the visitor's own inactive user, or the verified customer."""

    site: Site
    visitor: Visitor
    user: AbstractBaseUser
    token: str  # the visitor token to keep (a new one when the presented one was not valid)
    identified: bool
    identity_error: str = ""  # why a presented identity was not accepted (identity.IdentityError), else ""


def visitor_authenticate(
    *, site: Site, token: object, user_id: object, signature: object, expires: object = None
) -> WidgetIdentity:
    """The visitor `token` names on `site` (a new visitor when it is missing or invalid), chatting as the
    customer `user_id` only when `signature` is its valid HMAC under the site's secret (with `expires`,
    if the host signed one, still ahead).

    Any other identity leaves the chat anonymous, with the reason in `identity_error`: a forged
    signature is logged as a warning; an expired one, or a valid one for a user who is not an active
    customer (no customer account, staff), at INFO.
    """
    claim = visitor_token_read(token, site_id=site.pk)
    visitor = Visitor.objects.select_related("user").filter(pk=claim.visitor_id, site=site).first() if claim else None
    if visitor is None:
        visitor = _visitor_create(site=site)
    else:
        visitor.save(update_fields=["last_seen_at"])
    customer, identity_error = _verified_customer(site=site, user_id=user_id, signature=signature, expires=expires)
    return WidgetIdentity(
        site=site,
        visitor=visitor,
        user=customer or visitor.user,
        token=visitor_token_make(site_id=site.pk, visitor_id=visitor.pk),
        identified=customer is not None,
        identity_error=identity_error,
    )


def _visitor_create(*, site: Site) -> Visitor:
    visitor_id = uuid.uuid4()
    with transaction.atomic():
        # Inactive and without a usable password: this user can never log in, and has no customer account.
        user = get_user_model()(username=f"visitor-{visitor_id.hex}", is_active=False)
        user.set_unusable_password()
        user.save()
        return Visitor.objects.create(id=visitor_id, site=site, user=user)


def _verified_customer(
    *, site: Site, user_id: object, signature: object, expires: object
) -> tuple[AbstractBaseUser | None, str]:
    """The customer a presented identity proves, or None and why not ("" when none was presented)."""
    if not user_id and not signature:
        return None, ""
    error = identity_check(secret=site.secret, user_id=user_id, signature=signature, expires=expires)
    if error == IdentityError.MALFORMED:
        logger.warning("widget identity malformed", extra={"site": site.key})
        return None, error
    if error == IdentityError.FORGED:
        logger.warning("widget identity signature forged", extra={"site": site.key, "claimed_user_id": user_id})
        return None, error
    if error:
        logger.info("widget identity %s", error, extra={"site": site.key, "claimed_user_id": user_id})
        return None, error
    account = (
        CustomerAccount.objects.select_related("user")
        .filter(user__username=user_id, user__is_active=True, user__is_staff=False)
        .first()
    )
    if account is None:
        logger.info("widget identity signed for no customer", extra={"site": site.key})
        return None, IdentityError.NOT_A_CUSTOMER
    return account.user, ""


def visitor_conversation_claim(*, identity: WidgetIdentity, conversation_id: object) -> Conversation | None:
    """The guest conversation `conversation_id` of this visitor on this site, now the verified customer's:
    someone who chatted as a guest and then signed in on the host site goes on with the same chat, with
    their account context from the next question. None (nothing changed) unless the identity was
    accepted and the conversation is this visitor's own, held as a guest on this site.

    The visitor token proves the browser, the signature the customer: what the browser held as a
    guest was readable there already.
    """
    if not identity.identified:
        return None
    try:
        conversation = conversation_get_for_user(identity.visitor.user, conversation_id)
    except NotFound:
        return None
    with transaction.atomic():
        held = SiteConversation.objects.filter(
            conversation=conversation, site=identity.site, visitor=identity.visitor, identified=False
        ).update(identified=True)
        if not held:
            return None
        return conversation_owner_change(conversation=conversation, owner=identity.user)


def site_conversation_record(*, identity: WidgetIdentity, conversation: Conversation) -> None:
    """Remember that `conversation` is held on the identity's site (its spend counts there). Idempotent."""
    SiteConversation.objects.get_or_create(
        conversation=conversation,
        defaults={
            "conversation_key": str(conversation.pk),
            "site": identity.site,
            "visitor": identity.visitor,
            "identified": identity.identified,
        },
    )


def check_email(email: object) -> str:
    """An optional reply address. Raises `ApplicationError` ("invalid_email")."""
    if email is None or email == "":
        return ""
    if not isinstance(email, str) or len(email) > 254:
        raise ApplicationError("That email address is not valid.", code="invalid_email")
    try:
        validate_email(email.strip())
    except ValidationError as exc:
        raise ApplicationError("That email address is not valid.", code="invalid_email") from exc
    return email.strip()


def visitor_message_leave(
    *, identity: WidgetIdentity, conversation: Conversation, text: object, email: object
) -> SupportTicket:
    """A message for the human team instead of a model answer (a limit was reached), with an optional
    email for the reply (kept on the visitor). With an email, the text may be left out: a visitor whose
    request waits for a person while nobody can answer now leaves just where to answer them (the request
    is the conversation itself); the conversation's open tickets (its handoff, a degraded answer's) get
    the address, and a ticket is opened only if it has none.

    Raises `ApplicationError` for bad text or email ("empty_message" when there is neither).
    """
    clean_email = check_email(email)
    email_only = bool(clean_email) and (text is None or (isinstance(text, str) and not text.strip()))
    clean_text = "" if email_only else check_message_text(text)
    if clean_email and clean_email != identity.visitor.email:
        identity.visitor.email = clean_email
        identity.visitor.save(update_fields=["email", "last_seen_at"])
    reply_to = clean_email or identity.visitor.email or "(no email left)"
    addition = f"Reply to: {reply_to}" if email_only else f"Another message (reply to {reply_to}):\n{clean_text}"
    with transaction.atomic():
        tickets = (
            list(
                SupportTicket.objects.select_for_update()
                .filter(user=identity.user, conversation_id=str(conversation.pk))
                .exclude(status=SupportTicket.Status.CLOSED)
                .order_by("-pk")
            )
            if email_only
            else []
        )
        if not tickets:
            ticket, created = _message_ticket(identity, conversation, text=clean_text, reply_to=reply_to)
            if created:
                return ticket
            tickets = [ticket]
        for ticket in tickets:  # tickets the conversation had already: add to them
            if addition not in ticket.body:
                ticket.body += f"\n\n{addition}"
                ticket.save(update_fields=["body"])
    return tickets[0]


def _message_ticket(
    identity: WidgetIdentity, conversation: Conversation, *, text: str, reply_to: str
) -> tuple[SupportTicket, bool]:
    """(the conversation's open handoff ticket, False), or (a new one with the site, the address, `text`
    and the transcript, True)."""
    subject = f"Message left in the chat widget: {text[:80]}" if text else "Reply address left in the chat widget"
    body = f"Site: {identity.site.name} ({identity.site.origin})\nReply to: {reply_to}"
    if text:
        body += f"\n\n{text}"
    if conversation.messages.exists():
        body += "\n\n" + conversation_transcript(conversation)
    ticket = ticket_open(
        user=identity.user,
        subject=subject,
        body=body,
        source=SupportTicket.Source.HANDOFF,
        conversation_id=str(conversation.pk),
    )
    return ticket, ticket.body == body


def visitor_human_request(*, identity: WidgetIdentity, conversation: Conversation) -> SupportTicket:
    """The visitor asked for a person ("Talk to a human" in the widget): the chat's handoff (a ticket with
    the transcript, the agents' queue, an email to the team when nobody is online). The site and the
    visitor's email, if they left one, head the ticket. `conversation` is the visitor's own (the socket's)."""
    ticket = conversation_handoff(user=identity.user, conversation=conversation)
    if not identity.identified:
        reply_to = identity.visitor.email or "(no email left)"
        if not ticket.body.startswith("Site: "):
            ticket.body = f"Site: {identity.site.name} ({identity.site.origin})\nReply to: {reply_to}\n\n{ticket.body}"
            ticket.save(update_fields=["body"])
    return ticket
