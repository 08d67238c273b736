"""Claude / Anthropic SDK configuration.

- `ANTHROPIC_API_KEY` set: the SDK reads `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` itself, exactly as
  it documents, so any Anthropic-compatible server works.
- both unset: the bundled offline upstream (`apps.upstream`) at `SUPPORTBOT_UPSTREAM_URL`.
- `ANTHROPIC_BASE_URL` set without a key: that server, with a placeholder key (keyless compatible servers).
"""

from supportbot.settings.env import env

ANTHROPIC_API_KEY_CONFIGURED = bool(env.str("ANTHROPIC_API_KEY", default=""))
ANTHROPIC_BASE_URL_CONFIGURED = bool(env.str("ANTHROPIC_BASE_URL", default=""))
USE_OFFLINE_UPSTREAM = not ANTHROPIC_API_KEY_CONFIGURED and not ANTHROPIC_BASE_URL_CONFIGURED
UPSTREAM_PORT = env.int("SUPPORTBOT_UPSTREAM_PORT", default=8100)
OFFLINE_UPSTREAM_URL = env.str("SUPPORTBOT_UPSTREAM_URL", default=f"http://127.0.0.1:{UPSTREAM_PORT}")
# Sent only to the offline upstream or a keyless compatible server; never a real credential.
OFFLINE_API_KEY = "offline-emulator-key"

# Model ids are data: current Anthropic ids per tier (see anthropic._data.DEPRECATED_MODELS).
LLM_MODELS = {
    "haiku": env.str("LLM_MODEL_HAIKU", default="claude-haiku-4-5"),
    "sonnet": env.str("LLM_MODEL_SONNET", default="claude-sonnet-4-6"),
    "opus": env.str("LLM_MODEL_OPUS", default="claude-opus-4-6"),
}

# USD per million tokens (input, output). Cache writes/reads and batch discounts are multipliers.
LLM_PRICES_PER_MTOK = {
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-5": (5.0, 25.0),
}

LLM_MAX_ATTEMPTS = env.int("LLM_MAX_ATTEMPTS", default=4)
LLM_BACKOFF_INITIAL_SECONDS = env.float("LLM_BACKOFF_INITIAL_SECONDS", default=1.0)
LLM_BACKOFF_MAX_SECONDS = env.float("LLM_BACKOFF_MAX_SECONDS", default=30.0)
LLM_CONNECT_TIMEOUT_SECONDS = env.float("LLM_CONNECT_TIMEOUT_SECONDS", default=5.0)
LLM_FIRST_TOKEN_TIMEOUT_SECONDS = env.float("LLM_FIRST_TOKEN_TIMEOUT_SECONDS", default=20.0)
LLM_TOTAL_TIMEOUT_SECONDS = env.float("LLM_TOTAL_TIMEOUT_SECONDS", default=120.0)
LLM_BREAKER_FAILURE_THRESHOLD = env.int("LLM_BREAKER_FAILURE_THRESHOLD", default=5)
# The breaker opens after that many failures, and only once its model has been failing for this long
# with no success in between: a burst that clears in seconds is ridden out by the questions' own
# retries, an outage still opens it (0: on the count alone). apps/llm/breaker.py.
LLM_BREAKER_FAILING_SECONDS = env.float("LLM_BREAKER_FAILING_SECONDS", default=5.0)
LLM_BREAKER_RESET_SECONDS = env.float("LLM_BREAKER_RESET_SECONDS", default=30.0)
# The first probe comes this soon after the circuit opens; each failed probe doubles the wait, up to
# LLM_BREAKER_RESET_SECONDS (0: always the full period). apps/llm/breaker.py.
LLM_BREAKER_PROBE_SECONDS = env.float("LLM_BREAKER_PROBE_SECONDS", default=1.0)
# Per chat question: how long it may wait for a model whose breaker is open (the half-open probe's
# verdict) before it degrades to an apology and a ticket (docs/operations.md).
LLM_RETRY_BUDGET_SECONDS = env.float("LLM_RETRY_BUDGET_SECONDS", default=20.0)
LLM_BREAKER_POLL_SECONDS = env.float("LLM_BREAKER_POLL_SECONDS", default=0.25)

# --- apps.llm gateway tuning (see docs/llm.md) ---
# Context window per model id (tokens); models not listed use the default. The gateway keeps
# prompt + max_tokens under it by summarising older history.
LLM_DEFAULT_CONTEXT_WINDOW = env.int("LLM_DEFAULT_CONTEXT_WINDOW", default=200_000)
LLM_CONTEXT_WINDOWS: dict[str, int] = {}
# Below these prefix lengths a cache breakpoint is silently ignored upstream (no caching, no error).
LLM_MIN_CACHEABLE_TOKENS = {
    "claude-opus-5": 512,
    "claude-sonnet-4-5": 1_024,
    "claude-sonnet-4-6": 1_024,
    "claude-sonnet-5": 1_024,
    "claude-opus-4-8": 1_024,
    "claude-opus-4-7": 2_048,
    "claude-haiku-4-5": 4_096,
    "claude-opus-4-5": 4_096,
    "claude-opus-4-6": 4_096,
}
LLM_DEFAULT_MIN_CACHEABLE_TOKENS = 1_024
# Chat prompts longer than this step up one model tier when no routing rule matches.
LLM_LONG_PROMPT_TOKENS = env.int("LLM_LONG_PROMPT_TOKENS", default=60_000)
# When history must be summarised, this many latest turns stay verbatim.
LLM_SUMMARY_KEEP_TURNS = env.int("LLM_SUMMARY_KEEP_TURNS", default=4)
# Model calls one answer may make when it uses tools (the last one must answer in words).
LLM_TOOL_MAX_ROUNDS = env.int("LLM_TOOL_MAX_ROUNDS", default=4)
LLM_SUMMARY_MAX_TOKENS = env.int("LLM_SUMMARY_MAX_TOKENS", default=1_024)
# The exact count_tokens call is made once the local estimate passes this share of the budget.
LLM_COUNT_TOKENS_ABOVE_FRACTION = env.float("LLM_COUNT_TOKENS_ABOVE_FRACTION", default=0.5)
# Seconds each process reuses the enabled routing rules before reading them again (0 = every request).
LLM_ROUTING_RULES_CACHE_SECONDS = env.float("LLM_ROUTING_RULES_CACHE_SECONDS", default=5.0)
