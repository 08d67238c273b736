"""What the chat publishes on the channel layer, and what it leaves out when no other process listens."""

from channels.layers import InMemoryChannelLayer, get_channel_layer

from apps.chat import events

CONVERSATION = "5f0c7f5e-94c1-4f7e-9a51-3f1f1fbd0a11"


async def test_a_process_local_layer_carries_no_event_only_other_processes_act_on():
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)  # the test settings' layer: one process
    channel = await layer.new_channel()
    await layer.group_add(events.conversation_group(CONVERSATION), channel)

    await events.publish(CONVERSATION, events.ANSWER_STARTED, message_id=1, question={"text": "hi"})
    await events.publish(CONVERSATION, events.ANSWER_STOP)
    await events.publish(CONVERSATION, events.REPLY_FINISHED, message_id=1)

    # The first event the socket's channel gets is the finished one: the two before were not sent.
    received = await layer.receive(channel)
    assert received == {"type": events.REPLY_FINISHED, "origin": events.PROCESS_ID, "message_id": 1}
    await layer.group_discard(events.conversation_group(CONVERSATION), channel)


class RecordingLayer:
    """A layer shared with other processes (as Redis is), recording what is sent to it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message))


async def test_a_shared_layer_carries_every_event(monkeypatch):
    layer = RecordingLayer()
    monkeypatch.setattr(events, "get_channel_layer", lambda: layer)

    await events.publish(CONVERSATION, events.ANSWER_STARTED, message_id=1, question={"text": "hi"})
    await events.publish(CONVERSATION, events.ANSWER_STOP)
    await events.publish(CONVERSATION, events.REPLY_FINISHED, message_id=1)

    assert [message["type"] for _, message in layer.sent] == [
        events.ANSWER_STARTED,
        events.ANSWER_STOP,
        events.REPLY_FINISHED,
    ]
    assert {group for group, _ in layer.sent} == {events.conversation_group(CONVERSATION)}
