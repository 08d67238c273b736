"""Build Message Batch requests for transcripts: the classifier prompt (cached), routing, custom ids, sizes."""

import json
import re
from typing import Any

from apps.llm.types import PromptParts
from apps.triage.conf import triage_setting
from apps.triage.schema import CLARIFYING_INSTRUCTION
from apps.triage.selectors import TranscriptForClassification

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CUSTOM_ID = re.compile(r"^tb(?P<batch>\d+)-c(?P<classification>\d+)-a(?P<attempt>\d+)$")
# Rough chars-per-token for routing thresholds; the exact count is not worth a count_tokens call per transcript.
CHARS_PER_TOKEN = 4


def custom_id_for(*, batch_id: int, classification_id: int, attempt: int) -> str:
    """`tb<batch>-c<classification>-a<attempt>`: unique per attempt, and the batch prefix identifies a lost batch."""
    custom_id = f"tb{batch_id}-c{classification_id}-a{attempt}"
    if not CUSTOM_ID_PATTERN.match(custom_id):  # pragma: no cover - ids are ints, the shape cannot drift
        raise ValueError(custom_id)
    return custom_id


def custom_id_parse(custom_id: str) -> tuple[int, int, int] | None:
    """(batch id, classification id, attempt), or None for a custom_id that is not ours."""
    match = _CUSTOM_ID.match(custom_id)
    if not match:
        return None
    return int(match["batch"]), int(match["classification"]), int(match["attempt"])


def gap_draft_custom_id_for(*, batch_id: int, draft_id: int, attempt: int) -> str:
    """`tb<batch>-g<gap draft>-a<attempt>`: the same batch prefix, so a lost drafting batch is recognised too."""
    custom_id = f"tb{batch_id}-g{draft_id}-a{attempt}"
    if not CUSTOM_ID_PATTERN.match(custom_id):  # pragma: no cover - ids are ints, the shape cannot drift
        raise ValueError(custom_id)
    return custom_id


def classifier_prompt(*, version_id: int | None = None) -> PromptParts:
    """The classifier prompt: a specific version (to re-send a batch exactly as prepared) or the active one.

    Raises NotFound (an ApplicationError, code "prompt_no_active_version" / "not_found") when there is none.
    """
    from apps.prompts import selectors as prompt_selectors

    if version_id is not None:
        return prompt_selectors.prompt_version_get(version_id=version_id).to_parts()
    return prompt_selectors.prompt_version_active(slug=triage_setting("TRIAGE_CLASSIFIER_SLUG")).to_parts()


class RequestBuilder:
    """Turns transcripts into batch requests for one prompt version, memoising routing decisions.

    Routing depends only on plan tier and prompt size, so one decision per (tier, size bucket) serves a whole
    night instead of one routing lookup per conversation.
    """

    ROUTE_BUCKET_TOKENS = 256

    def __init__(self, prompt: PromptParts) -> None:
        self.prompt = prompt
        self._routes: dict[tuple[str, int], str] = {}
        self._system: Any = None
        self._system_bytes = 0
        self._prompt_chars = sum(
            len(part)
            for part in (prompt.persona, prompt.business_rules, prompt.output_format, prompt.few_shot_examples)
        ) + sum(len(title) + len(body) for title, body in prompt.reference_documents)

    def model_for(self, *, plan_tier: str, text_chars: int) -> str:
        from apps.llm.routing import route

        tokens = (self._prompt_chars + text_chars) // CHARS_PER_TOKEN
        bucket = (tokens // self.ROUTE_BUCKET_TOKENS + 1) * self.ROUTE_BUCKET_TOKENS
        key = (plan_tier, bucket)
        if key not in self._routes:
            self._routes[key] = route(
                task_type="classification",
                plan_tier=plan_tier,
                prompt_tokens=bucket,
                prompt_tier=self.prompt.model_tier,
            ).model
        return self._routes[key]

    def build(self, transcript: TranscriptForClassification, *, batch_id: int) -> dict[str, Any]:
        from apps.llm.batch import batch_request_params

        user_text = transcript.text
        if transcript.clarifying:
            user_text = f"{user_text}\n\n{CLARIFYING_INSTRUCTION}"
        model = self.model_for(plan_tier=transcript.plan_tier, text_chars=len(user_text))
        params = batch_request_params(prompt=self.prompt, user_text=user_text, model=model)
        # Every request carries the same system blocks: share one copy instead of thousands while a batch is built.
        if self._system is None:
            self._system = params.get("system")
            self._system_bytes = len(json.dumps(self._system))
        elif params.get("system") == self._system:
            params["system"] = self._system
        return {
            "custom_id": custom_id_for(
                batch_id=batch_id, classification_id=transcript.classification_id, attempt=transcript.attempt
            ),
            "params": params,
        }

    def size(self, request: dict[str, Any]) -> int:
        """Bytes the request adds to the batch body (ASCII-escaped JSON: an upper bound on what the SDK sends).

        The shared system blocks are measured once, not once per request.
        """
        params = request["params"]
        if self._system is not None and params.get("system") is self._system:
            rest = {**request, "params": {key: value for key, value in params.items() if key != "system"}}
            return len(json.dumps(rest)) + self._system_bytes + len(', "system": ') + 2
        return len(json.dumps(request)) + 2  # the separating ", "


def batch_result_error_type(result: Any) -> str:
    """A non-succeeded batch result's error type for the call log: the API error's own type for an
    "errored" result (e.g. "overloaded_error"), else the result type ("expired", "canceled")."""
    if result.type != "errored":
        return result.type
    error = getattr(result, "error", None)
    inner = getattr(error, "error", None)
    return str(getattr(inner, "type", "") or getattr(error, "type", "") or "errored")
