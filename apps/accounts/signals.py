"""Keep the cached account context (apps.accounts.selectors) in step with what it is built from."""

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.accounts.models import CustomerAccount, Invoice, SupportTicket
from apps.accounts.selectors import account_context_cache_key
from apps.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)


def _forget(user_id: object) -> None:
    key = account_context_cache_key(user_id)
    _delete(key)
    # Again after the commit: a reader between this write and its commit may have cached the old rows.
    transaction.on_commit(lambda: _delete(key))


def _delete(key: str) -> None:
    try:
        cache.delete(key)
    except CACHE_ERRORS:  # never fail the write; the entry expires after ACCOUNT_CONTEXT_CACHE_SECONDS
        logger.warning("account context cache unavailable; %s not dropped", key)


@receiver([post_save, post_delete], sender=CustomerAccount)
@receiver([post_save, post_delete], sender=SupportTicket)
def _account_or_ticket_changed(sender: Any, instance: CustomerAccount | SupportTicket, **kwargs: Any) -> None:
    _forget(instance.user_id)


@receiver([post_save, post_delete], sender=Invoice)
def _invoice_changed(sender: Any, instance: Invoice, **kwargs: Any) -> None:
    user_id = CustomerAccount.objects.filter(pk=instance.account_id).values_list("user_id", flat=True).first()
    if user_id is not None:
        _forget(user_id)


@receiver([post_save, post_delete], sender=get_user_model())
def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _forget(instance.pk)  # the username is part of the context
