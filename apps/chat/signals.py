"""Open chat sockets follow their login session: a logout (in any tab) ends them at once."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from apps.chat.events import SESSION_ENDED as SESSION_ENDED_EVENT
from apps.chat.events import session_group

logger = logging.getLogger(__name__)


@receiver(user_logged_out, dispatch_uid="chat.end_sockets_of_session")
def end_sockets_of_session(sender: Any, request: Any, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key is still the one the sockets joined with.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    layer = get_channel_layer()
    if not session_key or layer is None:
        return
    try:
        async_to_sync(layer.group_send)(session_group(session_key), {"type": SESSION_ENDED_EVENT})
    except Exception:  # the logout itself must succeed; the sockets' periodic check ends them later
        logger.warning("could not end the chat sockets of a logged-out session", exc_info=True)
