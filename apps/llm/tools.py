"""The tool loop: between two streamed rounds of one answer, run the tools the model called.

A round that ends with `stop_reason: "tool_use"` hands its complete `tool_use` blocks here; each runs
through the caller's `ToolRunner` (the gateway never knows what a tool does or whose account it acts
on), and the next round sends the assistant's turn back with one `tool_result` per call. The retries,
fallback, breaker, resets and the single outcome of `gateway.chat_stream` hold around every round.

A retry only ever repeats a model call, never a tool: a tool runs once its round has completed, and the
runner keys every call (apps.actions: one record per idempotency key) so a repeated call returns the
stored result instead of acting twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from apps.llm.attempts import Meter
from apps.llm.types import (
    ConfirmationRequested,
    ToolCall,
    ToolFinished,
    ToolOutcome,
    ToolSpec,
    ToolStarted,
)

logger = logging.getLogger(__name__)

# On the last allowed round the model must answer in words: `tool_choice: none` keeps the tools
# (and so the cached prefix) but forbids calling them.
LAST_ROUND_CHOICE: dict[str, str] = {"type": "none"}


class ToolRunner(Protocol):
    """Runs one tool call for the customer the caller authenticated. Must not raise for bad input."""

    async def __call__(self, call: ToolCall) -> ToolOutcome: ...


def error_outcome(message: str) -> ToolOutcome:
    """An `is_error` tool_result the model can read and explain."""
    return ToolOutcome(content=json.dumps({"error": message}), is_error=True)


class ToolLoop:
    """The tool turns of one answer, and how many rounds it may still take."""

    def __init__(self, tools: tuple[ToolSpec, ...], runner: ToolRunner | None, *, max_rounds: int) -> None:
        self.specs = {tool.name: tool for tool in tools} if runner is not None else {}
        self.runner = runner
        self.max_rounds = max(1, max_rounds)
        self.round = 1
        self.messages: list[dict[str, Any]] = []  # after the question: assistant tool_use, user tool_result, …

    @property
    def tool_choice(self) -> dict[str, str] | None:
        """None (the API's default, "auto") until the last allowed round."""
        return LAST_ROUND_CHOICE if self.specs and self.round >= self.max_rounds else None

    def wants_tools(self, meter: Meter) -> bool:
        """Whether the round that filled `meter` asked for tools this loop may still run."""
        return (
            bool(self.specs)
            and self.round < self.max_rounds
            and meter.stop_reason == "tool_use"
            and bool(meter.tool_uses)
        )

    async def run(self, meter: Meter) -> AsyncIterator[ToolStarted | ToolFinished | ConfirmationRequested]:
        """Run the round's tool calls in order, then add the assistant turn and its results to `messages`."""
        if self.runner is None:
            raise RuntimeError("ToolLoop.run() without a runner")
        content: list[dict[str, Any]] = []
        if meter.text.strip():
            content.append({"type": "text", "text": meter.text.rstrip()})
        content += meter.tool_uses
        results: list[dict[str, Any]] = []
        for block in meter.tool_uses:
            call = ToolCall(id=block["id"], name=block["name"], input=block["input"], round=self.round)
            spec = self.specs.get(call.name)
            if spec is None:
                outcome = error_outcome(f"There is no tool named {call.name!r}.")
            else:
                yield ToolStarted(call_id=call.id, name=call.name, progress=spec.progress)
                try:
                    outcome = await self.runner(call)
                except Exception:  # the answer must still end with one outcome
                    logger.exception("tool %s failed", call.name)
                    outcome = error_outcome("The tool failed unexpectedly; nothing was changed.")
                if outcome.confirmation is not None:
                    yield outcome.confirmation
                yield ToolFinished(call_id=call.id, name=call.name, is_error=outcome.is_error)
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id, "content": outcome.content}
            if outcome.is_error:
                result["is_error"] = True
            results.append(result)
        self.messages += [{"role": "assistant", "content": content}, {"role": "user", "content": results}]
        self.round += 1
