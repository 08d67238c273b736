"""Reads of action records: one access selector, shared by the consumer and the admin."""

from django.contrib.auth.models import AbstractBaseUser

from apps.actions.models import ActionRecord
from apps.core.exceptions import NotFound


def action_get_for_user(user: AbstractBaseUser, action_id: object, *, for_update: bool = False) -> ActionRecord:
    """The action `action_id` taken for `user`. Raises NotFound for anyone else's (or a malformed id)."""
    try:
        pk = int(action_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    records = ActionRecord.objects.select_related("account__user")
    if for_update:
        records = records.select_for_update(of=("self",))
    record = records.filter(pk=pk, user=user).first()
    if record is None:
        raise NotFound()
    return record
