"""What the chat publishes about a conversation: group names and event types (docs/protocol.md).

Every socket watching a conversation (the customer's tabs, an agent) joins `conversation_group(id)`.
Sockets in the process that runs an answer get its tokens straight from it (apps/chat/answer_run.py).
The layer carries control events — an answer started or finished, a stop request, a change of who
owns the conversation — so that sockets held by another server process stay correct, and an answer's
text, coalesced, only while a socket of another process asks for it (apps/chat/relay.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

# Events published by this process carry it, so a process ignores the layer's copy of an event its
# own sockets already had directly.
PROCESS_ID = uuid.uuid4().hex

# Channel-layer event types; a consumer's handler for "chat.reply_finished" is `chat_reply_finished`.
ANSWER_STARTED = "chat.answer_started"  # {"message_id", "question": <message payload>, "origin"}
REPLY_FINISHED = "chat.reply_finished"  # {"message_id", "origin"}
ANSWER_STOP = "chat.answer_stop"  # {"origin"}: stop the answer running in whichever process runs it
# A tool frame of an answer (tool_started, confirmation_requested, tool_finished): {"frame", "origin"}.
# Few per answer, unlike tokens, so sockets of other processes show the progress and the card live.
TOOL_FRAME = "chat.tool_frame"
# A confirmation card was decided: {"frame": <action_decided>, "sender": <the deciding socket's channel>}.
ACTION_DECIDED = "chat.action_decided"
# The text of an answer, for sockets of other processes that asked for it (apps/chat/relay.py):
# {"message_id", "generation", "start", "text", "reason" (a reset's), "origin"}.
ANSWER_TEXT = "chat.answer_text"
# One channel per server process joins RELAY_GROUP; a socket asks the process writing an answer for
# its text there: {"type": TEXT_WANTED, "conversation_id", "message_id", "fresh", "origin"}.
RELAY_GROUP = "chat.relay"
TEXT_WANTED = "chat.text_wanted"
SESSION_ENDED = "chat.session_ended"  # the login session logged out
# Who answers the conversation changed: {"state": <conversation state payload>}.
CONVERSATION_CHANGED = "chat.conversation_changed"
# A message not written by the assistant was stored (the customer's, to an agent; an agent's):
# {"message": <message payload>}.
MESSAGE_ADDED = "chat.message_added"
# The customer saw the agents' messages so far (an inbox pane says so under them): {}.
CUSTOMER_SEEN = "chat.customer_seen"
# Every socket that follows the queue of conversations needing a human (the inbox) joins this group:
# {"type": QUEUE_CHANGED, "conversation_id"}.
HANDOFFS_GROUP = "chat.handoffs"
QUEUE_CHANGED = "chat.queue_changed"


# Events every handler ignores when this process published them (its own sockets had them from the run
# itself): they matter only to sockets held by other processes. A process-local layer (one server
# process, no Redis) has none, so they are not sent: the copy would wake each watching socket to be
# dropped, and each group_send of the in-memory layer walks every channel and group of the process
# (~0.6 ms per event with 1,000 sockets open; bench/ws_bench.py).
OTHER_PROCESSES_ONLY = frozenset({ANSWER_STARTED, ANSWER_STOP})


def conversation_group(conversation_id: object) -> str:
    """The channel-layer group of everyone watching one conversation."""
    return f"chat.conversation.{conversation_id}"


def session_group(session_key: str) -> str:
    """The sockets opened with one login session: apps.chat.signals ends them at logout."""
    return f"chat.session.{session_key}"


async def publish(conversation_id: object, event_type: str, **fields: Any) -> None:
    """Send a control event to the conversation's group. Never raises: what it announces is stored,
    and a socket that misses it finds the stored state on its next read or reconnect."""
    layer = get_channel_layer()
    if layer is None or (event_type in OTHER_PROCESSES_ONLY and isinstance(layer, InMemoryChannelLayer)):
        return
    try:
        await layer.group_send(
            conversation_group(conversation_id), {"type": event_type, "origin": PROCESS_ID, **fields}
        )
    except Exception:
        logger.warning("could not publish %s", event_type, exc_info=True)


def publish_after_commit(group: str, event_type: str, **fields: Any) -> None:
    """From synchronous service code: send a control event to `group` once the transaction commits
    (never before: a socket would read a state not yet visible). Never raises."""
    from asgiref.sync import async_to_sync
    from django.db import transaction

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, {"type": event_type, "origin": PROCESS_ID, **fields})
        except Exception:
            logger.warning("could not publish %s", event_type, exc_info=True)

    transaction.on_commit(send)


def is_local(event: dict[str, Any]) -> bool:
    """Whether this process published `event` (its sockets had it directly)."""
    return event.get("origin") == PROCESS_ID
