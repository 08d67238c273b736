"""An answer's text for sockets of other processes: forwarded only while one asks, coalesced, and shown
once per character whatever overlaps (apps/chat/relay.py). Two real processes: test_relay_processes.py."""

import asyncio
import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.actions.models import ActionRecord
from apps.chat import answering, events, relay
from apps.chat.models import Message
from tests.chat.conftest import ChatSocket, shown_text
from tests.conftest import set_faults

QUESTION = "How do I download my last invoice?"


class Published:
    """Stands in for the run's ordered publisher."""

    def __init__(self) -> None:
        self.pieces: list[dict] = []

    def __call__(self, **fields) -> None:
        self.pieces.append(fields)


# -- the process writing the answer -----------------------------------------------------------------


async def test_nothing_is_forwarded_until_a_socket_elsewhere_asks():
    published = Published()
    forwarding = relay.TextRelay(published)
    forwarding.add(generation=0, start=0, text="Hello")
    forwarding.reset(generation=1, reason="retry")
    forwarding.flush()
    assert published.pieces == []


async def test_a_request_gets_the_text_so_far_then_the_new_text_coalesced():
    published = Published()
    forwarding = relay.TextRelay(published)
    forwarding.want(fresh=True, generation=0, text="Hello")
    for start, token in ((5, ","), (6, " wor"), (10, "ld")):
        forwarding.add(generation=0, start=start, text=token)
    assert published.pieces == [{"generation": 0, "start": 0, "text": "Hello"}]  # not per token
    await asyncio.sleep(relay.RELAY_INTERVAL_SECONDS * 2)
    assert published.pieces[1:] == [{"generation": 0, "start": 5, "text": ", world"}]


async def test_a_refresh_keeps_forwarding_without_repeating_the_text_so_far():
    published = Published()
    forwarding = relay.TextRelay(published)
    forwarding.want(fresh=True, generation=0, text="Hi")
    forwarding.want(fresh=False, generation=0, text="Hi")
    assert len(published.pieces) == 1
    forwarding.want(fresh=True, generation=0, text="Hi")  # a second socket elsewhere: it needs the text so far
    assert len(published.pieces) == 2


async def test_forwarding_stops_when_nobody_asks_again_and_resumes_with_the_text_so_far(monkeypatch):
    monkeypatch.setattr(relay, "WANT_TTL_SECONDS", 0.05)
    published = Published()
    forwarding = relay.TextRelay(published)
    forwarding.want(fresh=True, generation=0, text="a")
    await asyncio.sleep(0.1)
    forwarding.add(generation=0, start=1, text="b")
    forwarding.flush()
    assert published.pieces == [{"generation": 0, "start": 0, "text": "a"}]
    forwarding.want(fresh=False, generation=0, text="ab")  # a late refresh: pieces were missed meanwhile
    assert published.pieces[-1] == {"generation": 0, "start": 0, "text": "ab"}


async def test_a_reset_sends_the_waiting_text_first_then_the_new_generation():
    published = Published()
    forwarding = relay.TextRelay(published)
    forwarding.want(fresh=True, generation=0, text="")
    forwarding.add(generation=0, start=0, text="abc")
    forwarding.reset(generation=1, reason="fallback")
    assert published.pieces[1:] == [
        {"generation": 0, "start": 0, "text": "abc"},
        {"generation": 1, "start": 0, "text": "", "reason": "fallback"},
    ]


# -- a socket of another process ------------------------------------------------------------------


def piece(generation: int, start: int, text: str, **extra) -> dict:
    fields = {"generation": generation, "start": start, "text": text}
    return {"type": events.ANSWER_TEXT, "message_id": 1, **fields, **extra}


def test_overlapping_pieces_show_each_character_once():
    remote = relay.RemoteText()
    frames = []
    for event in (piece(0, 0, "Hello"), piece(0, 3, "lo, wo"), piece(0, 0, "Hello, wo"), piece(0, 9, "rld")):
        frames += remote.apply(event)[0]
    assert shown_text(frames) == "Hello, world"
    assert all(f["type"] == "delta" and f["text"] for f in frames)


def test_a_gap_asks_for_the_text_so_far_once_then_it_fills_the_gap():
    remote = relay.RemoteText()
    assert remote.apply(piece(0, 4, "xyz")) == ([], True)  # joined mid-answer: a piece before its snapshot
    assert remote.apply(piece(0, 7, "!")) == ([], False)  # asked already
    frames, ask = remote.apply(piece(0, 0, "abcdxyz"))
    assert (shown_text(frames), ask) == ("abcdxyz", False)


def test_a_new_generation_resets_what_was_shown_and_only_then():
    shown = relay.RemoteText()
    shown.apply(piece(0, 0, "Hel"))
    frames, _ = shown.apply(piece(1, 0, "", reason="fallback"))
    assert frames == [{"type": "reset", "reason": "fallback"}]
    assert shown.apply(piece(0, 3, "lo")) == ([], False)  # text of the abandoned attempt
    fresh = relay.RemoteText()  # joined after the reset: nothing to take back
    assert fresh.apply(piece(2, 0, "Bonjour"))[0] == [{"type": "delta", "text": "Bonjour"}]
    missed = relay.RemoteText()
    missed.apply(piece(0, 0, "Hel"))
    assert missed.apply(piece(1, 5, "x")) == ([], True)  # its reset was missed


def test_the_stored_reply_completes_what_was_shown():
    done = {"type": "done", "message_id": 1, "status": "complete"}
    remote = relay.RemoteText()
    remote.apply(piece(0, 0, "Hello"))
    assert remote.final_frames("Hello, world", [{"type": "delta", "text": "Hello, world"}, done]) == [
        {"type": "delta", "text": ", world"},
        done,
    ]
    assert remote.final_frames("Hello", [{"type": "delta", "text": "Hello"}, done]) == [done]
    assert remote.final_frames("Sorry", [{"type": "delta", "text": "Sorry"}, done]) == [
        {"type": "reset", "reason": "final_text"},
        {"type": "delta", "text": "Sorry"},
        done,
    ]
    failed = {"type": "error", "code": "generation_failed", "message_id": 1}
    assert remote.final_frames("Hello", [failed]) == [failed]
    assert relay.RemoteText().final_frames("Hi", [{"type": "delta", "text": "Hi"}, done]) == [
        {"type": "delta", "text": "Hi"},
        done,
    ]


# -- an answer being written in this process --------------------------------------------------------


async def group_events(conversation_id: str, until: str, timeout: float = 20) -> tuple[str, asyncio.Task]:
    """Collect the conversation's channel-layer events until one of type `until` (a remote socket's view)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.conversation_group(conversation_id), channel)

    async def collect() -> list[dict]:
        seen = []
        while not seen or seen[-1]["type"] != until:
            seen.append(await asyncio.wait_for(layer.receive(channel), timeout=timeout))
        return seen

    return channel, asyncio.create_task(collect())


@pytest.mark.django_db(transaction=True)
async def test_an_answer_forwards_its_text_only_after_a_request_and_it_adds_up_to_the_stored_reply(chat_env, customer):
    set_faults(chat_env, {"token_ms": 20})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    _, unwatched = await group_events(conversation_id, events.REPLY_FINISHED)
    await socket.ask(QUESTION)
    await socket.until_terminal()
    assert events.ANSWER_TEXT not in [e["type"] for e in await unwatched]  # nobody elsewhere: no text crossed

    _, watched = await group_events(conversation_id, events.REPLY_FINISHED)
    await socket.ask("And the one before?")
    ack = await socket.receive()
    assert [(await socket.receive())["type"] for _ in range(2)] == ["delta", "delta"]
    answering._text_wanted(
        {"conversation_id": conversation_id, "message_id": ack["reply_id"], "fresh": True, "origin": "elsewhere"}
    )
    frames = await socket.until_terminal()
    pieces = [e for e in await watched if e["type"] == events.ANSWER_TEXT]
    await socket.close()

    assert pieces[0]["start"] == 0 and pieces[0]["text"]  # the text so far first
    assert len(pieces) < len([f for f in frames if f["type"] == "delta"])  # coalesced, not per token
    remote = relay.RemoteText()
    shown = [frame for event in pieces for frame in remote.apply(event)[0]]
    reply = await database_sync_to_async(Message.objects.get)(pk=ack["reply_id"])
    assert shown_text(shown) == reply.text != ""


# -- sockets of this process following an answer another process writes ----------------------------


@database_sync_to_async
def streaming_elsewhere(conversation_id: str) -> Message:
    """A question and its reply being written, as another server process stores them."""
    question = Message.objects.create(conversation_id=conversation_id, role="user", text=QUESTION, status="complete")
    return Message.objects.create(
        conversation_id=conversation_id, role="assistant", status="streaming", reply_to=question
    )


@database_sync_to_async
def process_died(reply: Message) -> None:
    """Its process died long ago: the row is older than any answer can take."""
    Message.objects.filter(pk=reply.pk).update(created_at=reply.created_at - dt.timedelta(days=1))


def card_shown(customer, reply: Message) -> ActionRecord:
    """The answer asked the customer to confirm a cancellation (the card waits)."""
    return ActionRecord.objects.create(
        account=customer.customer_account,
        user=customer,
        conversation_id=str(reply.conversation_id),
        reply_id=reply.pk,
        tool="cancel_subscription",
        risk=ActionRecord.Risk.CONFIRM,
        idempotency_key=f"test-{reply.pk}",
        tool_use_id="toolu_1",
        status=ActionRecord.Status.AWAITING_CONFIRMATION,
        summary="Cancel your Pro subscription at the end of the period.",
    )


async def from_elsewhere(conversation_id: str, event_type: str, **fields) -> None:
    await get_channel_layer().group_send(
        events.conversation_group(conversation_id), {"type": event_type, "origin": "another process", **fields}
    )


@pytest.mark.django_db(transaction=True)
async def test_a_tab_shows_the_forwarded_text_and_ends_even_if_the_writing_process_died(
    chat_env, customer, monkeypatch
):
    monkeypatch.setattr(relay, "WANT_REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(relay, "STORED_CHECK_ROUNDS", 2)
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    reply = await streaming_elsewhere(conversation_id)
    await from_elsewhere(conversation_id, events.ANSWER_STARTED, message_id=reply.pk, question=None)
    assert (await socket.receive())["type"] == "answer_started"
    await from_elsewhere(conversation_id, events.ANSWER_TEXT, message_id=reply.pk, generation=0, start=0, text="Go to")
    await from_elsewhere(conversation_id, events.ANSWER_TEXT, message_id=reply.pk, generation=0, start=3, text="to Bil")
    assert [await socket.receive(), await socket.receive()] == [
        {"type": "delta", "text": "Go to"},
        {"type": "delta", "text": " Bil"},
    ]
    await process_died(reply)
    frames = await socket.until_terminal(timeout=5)
    assert [(f["type"], f.get("code"), f.get("message_id")) for f in frames] == [
        ("error", "generation_failed", reply.pk)
    ]
    assert await socket.communicator.receive_nothing(timeout=0.3)
    await socket.close()


@pytest.mark.django_db(transaction=True)
async def test_an_agent_follows_an_answer_written_elsewhere_and_its_end_even_if_that_process_died(
    chat_env, customer, monkeypatch
):
    from tests.inbox.conftest import InboxSocket, make_agent

    monkeypatch.setattr(relay, "WANT_REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(relay, "STORED_CHECK_ROUNDS", 2)
    agent = await database_sync_to_async(make_agent)("dana", "Dana")
    customer_socket = await ChatSocket.open(customer)
    conversation_id = (await customer_socket.receive())["id"]
    await customer_socket.close()
    reply = await streaming_elsewhere(conversation_id)
    card = await database_sync_to_async(card_shown)(customer, reply)
    inbox = await InboxSocket.open(agent)
    await inbox.receive_type("inbox")
    await inbox.communicator.send_json_to({"type": "watch", "conversation": conversation_id})
    await inbox.receive_type("watching")
    started = await inbox.receive()  # read from the database: the answer started before the agent looked
    assert (started["type"], started["reply_id"], started["question"]["text"]) == ("answer_started", reply.pk, QUESTION)
    # Its progress line and card so far, as the customer got them, for the pane to draw (read-only).
    progress = [await inbox.receive() for _ in range(3)]
    assert [(f["type"], f["conversation_id"]) for f in progress] == [
        ("tool_started", conversation_id),
        ("confirmation_requested", conversation_id),
        ("tool_finished", conversation_id),
    ]
    assert progress[0]["progress"] == "Preparing the cancellation\u2026"
    assert (progress[1]["action_id"], progress[1]["summary"]) == (card.pk, card.summary)
    assert progress[2]["is_error"] is False
    await from_elsewhere(conversation_id, events.ANSWER_TEXT, message_id=reply.pk, generation=0, start=0, text="Hi")
    assert await inbox.receive() == {"type": "delta", "text": "Hi"}
    await process_died(reply)
    ended = await inbox.receive(timeout=5)
    assert ended == {"type": "reply_stored", "conversation_id": conversation_id, "reply_id": reply.pk}
    await inbox.communicator.disconnect()
