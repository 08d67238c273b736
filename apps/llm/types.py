"""Plain values that cross the gateway boundary (see docs/architecture.md).

Callers build these from their own models; the gateway never imports chat, prompts or triage models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

import pydantic


@dataclass(frozen=True)
class PromptParts:
    """One prompt version, split into the parts the gateway assembles (built by `PromptVersion.to_parts()`)."""

    slug: str  # "support-assistant"
    version: str  # "2.1.0"
    version_id: int | None
    persona: str
    business_rules: str
    output_format: str
    reference_documents: tuple[tuple[str, str], ...]  # (title, body), fixed order
    few_shot_examples: str
    max_tokens: int
    model_tier: str = ""  # optional default route from the version ("haiku"/"sonnet"/"opus")
    cache_ttl: str = "5m"  # the system blocks' cache lifetime: "5m" or "1h" (cache_control ttl)
    tool_names: tuple[str, ...] = ()  # the actions this version may call (the caller turns them into ToolSpecs)
    # True for a published version (its content never changes): the gateway may cache what it derives
    # from it, e.g. the assembled system blocks. Drafts leave it False and are never cached.
    immutable: bool = False
    # The knowledge snapshot the reference documents come from (None: the version's own documents, or
    # retrieval): logged on every call so metrics per prompt version and A/B stay truthful.
    knowledge_snapshot_id: int | None = None
    # Prefix mode with citations (KNOWLEDGE_PREFIX_CITATIONS): the whole snapshot as citable sources, sent
    # as `search_result` blocks at the head of the first user turn, inside the cached prefix, instead of
    # `reference_documents` in the system prompt (which cannot hold search results).
    knowledge_prefix: tuple[KnowledgeSource, ...] = ()


@dataclass(frozen=True)
class KnowledgeSource:
    """One retrieved article, sent as a `search_result` block with citations enabled."""

    title: str
    source: str  # the article's public URL (or a stable id when it has none): what citations name
    passages: tuple[str, ...]  # the citable units (paragraphs), in order


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant" | "agent" (a person from the support team; sent on the assistant side)
    text: str
    author: str = ""  # an agent turn's name, as the customer saw it


@dataclass
class ReplyRef:
    """The stored assistant message an answer is for, named on every `LLMCall` row of that answer.

    Mutable on purpose: the chat consumer may start the upstream call while the question is still being
    stored (docs/architecture.md, "Starting the answer while the question is stored") and fills in
    `message_id` once the row exists. Attempts are logged when they end, after that.
    """

    message_id: int | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its API definition, plus the progress line the customer sees meanwhile."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(hash=False, compare=True)
    progress: str = ""  # "Looking up your invoices…"; never sent upstream

    def definition(self) -> dict[str, Any]:
        """The API's tool definition (`tools: [...]`), the same bytes every time for the same spec."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolCall:
    """One complete `tool_use` block the model produced."""

    id: str
    name: str
    input: dict[str, Any] = field(hash=False)
    round: int = 1


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call gave back: the `tool_result` content (JSON text) and whether it is an error.

    `confirmation` is set when the call is a write that waits for the customer's decision: nothing ran.
    """

    content: str
    is_error: bool = False
    confirmation: ConfirmationRequested | None = None


@dataclass(frozen=True)
class ChatRequest:
    prompt: PromptParts
    history: tuple[Turn, ...]  # earlier complete turns, oldest first (after `summary`)
    summary: str  # compressed older history ("" when none)
    user_text: str
    account_context: str  # rendered by accounts (already delimited & escaped)
    plan_tier: str  # "free" | "pro" | "enterprise"
    language: str  # ISO 639-1 preference
    conversation_id: str | None
    model_override: str = ""
    reply: ReplyRef = field(default_factory=ReplyRef)  # the assistant Message row being produced
    # Retrieved articles for this question (retrieval mode); empty when the snapshot is in the prefix.
    knowledge: tuple[KnowledgeSource, ...] = ()
    tools: tuple[ToolSpec, ...] = ()  # what the model may call, in a fixed order (part of the cached prefix)
    # Per-request facts for the new user turn, after the account context (never in the cached system
    # blocks): whether a person can take over right now; for a draft, who will send it.
    turn_context: str = ""

    def same_call(self, other: ChatRequest) -> bool:
        """True when both send the same upstream request: they differ at most in the reply they are for."""
        return replace(self, reply=other.reply) == other


OutcomeStatus = Literal["complete", "incomplete", "degraded"]


@dataclass(frozen=True)
class ChatOutcome:
    """How one answer ended. `text` is exactly what the user saw (after any Reset)."""

    status: OutcomeStatus
    text: str
    model: str
    prompt_version: str
    stop_reason: str = ""
    error_code: str = ""
    refused: bool = False
    ttft_ms: int | None = None
    latency_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    # The answer's citations as the API sent them (`search_result_location`, `char_location`, …).
    citations: tuple[dict[str, Any], ...] = ()
    rounds: int = 1  # model calls of the answer (more than one when tools ran between them)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Reset:
    """The client must discard the partial answer shown so far: another attempt restarts it."""

    reason: str


@dataclass(frozen=True)
class Retrying:
    """No model can answer right now (their breakers are open): the question waits for a probe's verdict,
    for at most `budget_seconds` more, then degrades."""

    budget_seconds: float


@dataclass(frozen=True)
class HistorySummarised:
    """Older history was compressed to fit the context window; the caller persists it.

    `summary` replaces the current summary and covers `turns_covered` more of the oldest history turns
    than the summary it replaces, so a caller keeping a `summary_turns` counter adds `turns_covered`
    to it. One answer may yield this more than once; each event counts only its own new turns.
    """

    summary: str
    turns_covered: int


@dataclass(frozen=True)
class Finished:
    outcome: ChatOutcome


@dataclass(frozen=True)
class ToolStarted:
    """The model called a tool and it is about to run: the customer sees `progress`."""

    call_id: str
    name: str
    progress: str


@dataclass(frozen=True)
class ToolFinished:
    call_id: str
    name: str
    is_error: bool


@dataclass(frozen=True)
class ConfirmationRequested:
    """A write waits for the customer: show a card with `summary` and Confirm / Cancel for `action_id`."""

    action_id: int
    tool: str
    summary: str


GatewayEvent = (
    TextDelta | Reset | Retrying | HistorySummarised | ToolStarted | ToolFinished | ConfirmationRequested | Finished
)


@dataclass(frozen=True)
class RouteDecision:
    model: str
    fallbacks: tuple[str, ...]
    reason: str

    @property
    def chain(self) -> tuple[str, ...]:
        """The primary model then its fallbacks, without repeats."""
        return tuple(dict.fromkeys((self.model, *self.fallbacks)))


@dataclass(frozen=True)
class JsonResult:
    """The outcome of `complete_json`: a validated object, or what came back and why it was rejected."""

    ok: bool
    data: pydantic.BaseModel | None = None
    raw_text: str = ""
    error: str = ""
    model: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class PreviewResult:
    """What the prompts admin shows before publishing: the exact request and its token figures."""

    params: dict[str, Any]
    input_tokens: int
    cached_prefix_tokens: int
    min_cacheable_tokens: int
    warnings: list[str] = field(default_factory=list)
    model: str = ""
    estimated: bool = False  # True when the count_tokens endpoint failed and the local estimate was used
    cache: CacheTTLFigures | None = None  # what the prefix costs per TTL (None for an unpriced model)


@dataclass(frozen=True)
class CacheTTLFigures:
    """The cached prefix's cost with each TTL, and where the 1-hour TTL starts to pay."""

    ttl: str  # the version's choice
    write_5m_usd: Decimal
    write_1h_usd: Decimal
    read_usd: Decimal
    # Requests per hour, each more than 5 minutes after the previous (so a 5-minute entry has always
    # expired), above which one 1-hour write plus reads costs less than a 5-minute write every time.
    break_even_per_hour: float
