"""The gateway's ToolRunner for one answer: every call acts for the account the server authenticated."""

from __future__ import annotations

from channels.db import DatabaseSyncToAsync

from apps.actions.services import CallScope, action_call
from apps.llm.types import ToolCall, ToolOutcome


class AccountToolRunner:
    """Runs the model's tool calls for `scope.account` (apps.llm.tools.ToolRunner)."""

    def __init__(self, scope: CallScope) -> None:
        self.scope = scope

    async def __call__(self, call: ToolCall) -> ToolOutcome:
        # Any worker thread (not Channels' single shared one): each call is its own transaction.
        run = DatabaseSyncToAsync(action_call, thread_sensitive=False)
        return await run(scope=self.scope, tool_name=call.name, arguments=call.input, tool_use_id=call.id)
