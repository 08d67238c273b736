"""Who watches each conversation in this process, and the answer being written here for it.

Every socket of this process on a conversation (the customer's tabs, a page reloaded mid-answer, an
agent in the inbox) is a `Watcher` of it. A conversation has at most one answer being written here at
a time (an `AnswerRun`, apps/chat/answer_run.py); a watcher that joins while it runs gets what it
missed of it first, then the same frames as everyone else (docs/protocol.md, "One stream, many
watchers"). Sockets of other processes learn of the answer through control events (apps/chat/events.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from apps.chat.answer_run import AnswerRun


class Watcher(Protocol):
    """A socket watching a conversation. Both methods must not raise (a gone client is ignored)."""

    async def watch_send(self, encoded: str) -> None:
        """Write one frame, already JSON-encoded; called in the order the frames must arrive."""

    async def watch_terminal(self, frame: dict[str, Any]) -> None:
        """The answer's one terminal frame (`done` or `error`); the conversation takes questions again."""


@dataclass
class Hub:
    """The watchers of one conversation in this process, and its answer being written here (if any)."""

    watchers: set[Watcher] = field(default_factory=set)
    run: AnswerRun | None = None


_hubs: dict[str, Hub] = {}


def hub_for(conversation_id: object) -> Hub:
    """The conversation's hub in this process, created on first use."""
    key = str(conversation_id)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = Hub()
    return hub


def _hub_prune(conversation_id: object) -> None:
    key = str(conversation_id)
    hub = _hubs.get(key)
    if hub is not None and not hub.watchers and hub.run is None:
        del _hubs[key]


def running_answer(conversation_id: object) -> AnswerRun | None:
    """The answer being written in this process for the conversation, if any."""
    hub = _hubs.get(str(conversation_id))
    return hub.run if hub is not None else None


def run_release(run: AnswerRun) -> None:
    """The conversation no longer has `run` as its answer being written (it is stored)."""
    hub = _hubs.get(str(run.conversation_id))
    if hub is not None and hub.run is run:
        hub.run = None
        _hub_prune(run.conversation_id)


async def conversation_watch(conversation_id: object, watcher: Watcher, *, known_reply_ids: set[int]) -> int | None:
    """Start sending the conversation's answers to `watcher`.

    If an answer is being written here now, the watcher first gets what it lacks of it — the
    `answer_started` frame unless the reply is in `known_reply_ids` (it had the transcript with it),
    then the text so far as one `delta` — and then the live frames and the terminal one. Returns that
    reply's id (its result reaches the watcher from here), else None.
    """
    hub = hub_for(conversation_id)
    hub.watchers.add(watcher)
    run = hub.run
    if run is None:
        return None
    return await run.attach(watcher, knows_reply=run.reply.pk in known_reply_ids)


def conversation_unwatch(conversation_id: object, watcher: Watcher) -> None:
    """Stop sending to `watcher` (it disconnected). An answer being written goes on and is stored."""
    hub = _hubs.get(str(conversation_id))
    if hub is None:
        return
    hub.watchers.discard(watcher)
    if hub.run is not None:
        hub.run.watchers.discard(watcher)
    _hub_prune(conversation_id)
