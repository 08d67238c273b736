"""Request validation with the real API's rules and (approximately) its messages."""

from __future__ import annotations

from typing import Any

from .cache import validate_breakpoints
from .catalog import max_output_tokens
from .errors import UpstreamError, invalid_request
from .prompt import cache_controls, content_blocks
from .tooluse import validate_tool_turns

API_VERSION_LEGACY = "2023-06-01"
API_VERSION_CURRENT = "2026-10-21"
SUPPORTED_API_VERSIONS: frozenset[str] = frozenset({"2023-01-01", API_VERSION_LEGACY, API_VERSION_CURRENT})
# Removed from the Messages API in 2026-10-21; still accepted (and range-checked) under older versions.
SAMPLING_PARAMS: tuple[str, ...] = ("temperature", "top_p", "top_k")

COMMON_PARAMS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "output_format",
        "service_tier",
        "speed",
        "mcp_servers",
        "context_management",
        "user_profile_id",
        *SAMPLING_PARAMS,
    }
)
CREATE_ONLY_PARAMS: frozenset[str] = frozenset({"max_tokens", "stop_sequences", "stream"})
ROLES = ("user", "assistant")
KNOWN_BLOCK_TYPES: frozenset[str] = frozenset(
    {
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)


def validate_api_version(version: str | None) -> None:
    if not version:
        raise invalid_request("anthropic-version: header is required")
    if version not in SUPPORTED_API_VERSIONS:
        raise invalid_request(f"anthropic-version: invalid version '{version}'")


def validate_create_body(body: Any, api_version: str, *, path: str = "") -> None:
    """Validate a `POST /v1/messages` body (also each batch request's `params`, with `path` prefix)."""
    _require_object(body, path)
    _reject_unknown(body, COMMON_PARAMS | CREATE_ONLY_PARAMS, path)
    _validate_common(body, api_version, path)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid_request(f"{path}max_tokens: Field required")
    # 0 is allowed: it pre-warms the prompt cache without generating anything.
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise invalid_request(f"{path}max_tokens: Input should be a valid non-negative integer")
    limit = max_output_tokens(body["model"])
    if max_tokens > limit:
        raise invalid_request(
            f"{path}max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens "
            f"for {body['model']}"
        )
    stop_sequences = body.get("stop_sequences")
    if stop_sequences is not None:
        if not isinstance(stop_sequences, list) or not all(isinstance(item, str) for item in stop_sequences):
            raise invalid_request(f"{path}stop_sequences: Input should be a valid list of strings")
        if any(not item.strip() for item in stop_sequences):
            raise invalid_request(f"{path}stop_sequences: each stop sequence must contain non-whitespace")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid_request(f"{path}stream: Input should be a valid boolean")


def validate_count_tokens_body(body: Any, api_version: str) -> None:
    _require_object(body, "")
    _reject_unknown(body, COMMON_PARAMS, "")
    _validate_common(body, api_version, "")


def _require_object(body: Any, path: str) -> None:
    if not isinstance(body, dict):
        raise invalid_request(f"{path or 'body'}: Input should be a valid dictionary")


def _reject_unknown(body: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in body:
        if key not in allowed:
            raise invalid_request(f"{path}{key}: Extra inputs are not permitted")


def _validate_common(body: dict[str, Any], api_version: str, path: str) -> None:
    model = body.get("model")
    if model is None:
        raise invalid_request(f"{path}model: Field required")
    if not isinstance(model, str) or not model:
        raise invalid_request(f"{path}model: Input should be a valid string")
    _validate_sampling(body, api_version, path)
    _validate_system(body.get("system"), path)
    _validate_messages(body.get("messages"), path)
    _validate_tools(body.get("tools"), path)
    _validate_output_config(body.get("output_config"), path)
    validate_breakpoints(cache_controls(body))


def _validate_output_config(output_config: Any, path: str) -> None:
    """`output_config` (OutputConfigParam): an object; its `format`, when given, a JSONOutputFormatParam."""
    if output_config is None:
        return
    if not isinstance(output_config, dict):
        raise invalid_request(f"{path}output_config: Input should be a valid dictionary")
    for key in output_config:
        if key not in ("effort", "format"):
            raise invalid_request(f"{path}output_config.{key}: Extra inputs are not permitted")
    output_format = output_config.get("format")
    if output_format is None:
        return
    if not isinstance(output_format, dict):
        raise invalid_request(f"{path}output_config.format: Input should be a valid dictionary")
    if output_format.get("type") != "json_schema":
        raise invalid_request(f"{path}output_config.format.type: Input should be 'json_schema'")
    if not isinstance(output_format.get("schema"), dict):
        raise invalid_request(f"{path}output_config.format.schema: Field required")


def _validate_sampling(body: dict[str, Any], api_version: str, path: str) -> None:
    for name in SAMPLING_PARAMS:
        if name not in body:
            continue
        if api_version == API_VERSION_CURRENT:
            raise invalid_request(
                f"{path}{name}: this parameter is not supported with anthropic-version {API_VERSION_CURRENT}"
            )
        value = body[name]
        if name == "top_k":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise invalid_request(f"{path}top_k: Input should be a non-negative integer")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise invalid_request(f"{path}{name}: Input should be a number between 0 and 1")


def _validate_system(system: Any, path: str) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_request(f"{path}system: Input should be a valid string or a list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid_request(f"{path}system.{index}: Input should be a text block")
        if not block["text"]:
            raise invalid_request(f"{path}system.{index}: text content blocks must be non-empty")


def _validate_messages(messages: Any, path: str) -> None:
    if messages is None:
        raise invalid_request(f"{path}messages: Field required")
    if not isinstance(messages, list):
        raise invalid_request(f"{path}messages: Input should be a valid list")
    if not messages:
        raise invalid_request(f"{path}messages: at least one message is required")
    for index, message in enumerate(messages):
        _validate_message(message, f"{path}messages.{index}")
    # No "first message must use the user role": the real API accepts an assistant turn first (the SDK's
    # `messages` doc: "a single user-role message, or multiple user and assistant messages";
    # anthropic-sdk-typescript#622 shows it succeeding).
    validate_citation_consistency(messages)
    validate_tool_turns(messages, path)
    last = messages[-1]
    if last["role"] == "assistant":
        last_blocks = content_blocks(last["content"])
        if (
            last_blocks
            and last_blocks[-1].get("type") == "text"
            and last_blocks[-1]["text"] != last_blocks[-1]["text"].rstrip()
        ):
            raise invalid_request(f"{path}messages: final assistant content cannot end with trailing whitespace")
    # Consecutive turns with the same role are merged by the real API (see the SDK's `messages` doc),
    # so they are accepted here too.


def _validate_message(message: Any, path: str) -> None:
    if not isinstance(message, dict):
        raise invalid_request(f"{path}: Input should be a valid dictionary")
    if message.get("role") not in ROLES:
        raise invalid_request(f"{path}.role: Input should be 'user' or 'assistant'")
    unknown = set(message) - {"role", "content"}
    if unknown:
        raise invalid_request(f"{path}.{min(unknown)}: Extra inputs are not permitted")
    content = message.get("content")
    if content is None:
        raise invalid_request(f"{path}.content: Field required")
    if isinstance(content, str):
        if not content and message["role"] == "user":
            raise invalid_request(f"{path}: user messages must have non-empty content")
        return
    if not isinstance(content, list):
        raise invalid_request(f"{path}.content: Input should be a valid string or list of content blocks")
    if not content and message["role"] == "user":
        raise invalid_request(f"{path}: user messages must have non-empty content")
    for index, block in enumerate(content):
        _validate_block(block, f"{path}.content.{index}")


def _validate_block(block: Any, path: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid_request(f"{path}: Input should be a content block object with a 'type'")
    block_type = block["type"]
    if block_type not in KNOWN_BLOCK_TYPES:
        raise invalid_request(
            f"{path}.type: Input tag '{block_type}' found using 'type' does not match any of the expected tags"
        )
    if block_type == "text":
        if not isinstance(block.get("text"), str):
            raise invalid_request(f"{path}.text: Field required")
        if not block["text"]:
            raise invalid_request(f"{path}: text content blocks must be non-empty")
    elif block_type == "tool_use":
        for field in ("id", "name", "input"):
            if field not in block:
                raise invalid_request(f"{path}.{field}: Field required")
    elif block_type == "tool_result" and "tool_use_id" not in block:
        raise invalid_request(f"{path}.tool_use_id: Field required")
    elif block_type == "search_result":
        _validate_search_result(block, path)
    elif block_type == "document":
        _validate_document(block, path)
    if block_type in ("search_result", "document") and "citations" in block:
        _validate_citations_config(block["citations"], f"{path}.citations")


def _validate_search_result(block: dict[str, Any], path: str) -> None:
    for name in ("source", "title"):
        if not isinstance(block.get(name), str):
            raise invalid_request(f"{path}.{name}: Field required")
    content = block.get("content")
    if not isinstance(content, list):
        raise invalid_request(f"{path}.content: Field required")
    if not content:
        raise invalid_request(f"{path}.content: search result content must contain at least one text block")
    for index, inner in enumerate(content):
        if not isinstance(inner, dict) or inner.get("type") != "text":
            raise invalid_request(f"{path}.content.{index}.type: Input should be 'text'")
        _validate_block(inner, f"{path}.content.{index}")


def _validate_document(block: dict[str, Any], path: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise invalid_request(f"{path}.source: Field required")
    if source["type"] == "text" and not isinstance(source.get("data"), str):
        raise invalid_request(f"{path}.source.data: Field required")
    if source["type"] == "content" and not isinstance(source.get("content"), str | list):
        raise invalid_request(f"{path}.source.content: Field required")


def _validate_citations_config(config: Any, path: str) -> None:
    if not isinstance(config, dict) or not isinstance(config.get("enabled", False), bool):
        raise invalid_request(f"{path}: Input should be an object with a boolean 'enabled'")


def validate_citation_consistency(messages: list[Any]) -> None:
    """Citations must be enabled on all search results or on none (the API's rule; likewise documents)."""
    for kind in ("search_result", "document"):
        flags = {
            bool((block.get("citations") or {}).get("enabled"))
            for message in messages
            if isinstance(message, dict)
            for block in _blocks_with_tool_results(message.get("content"))
            if isinstance(block, dict) and block.get("type") == kind
        }
        if len(flags) > 1:
            noun = "search results" if kind == "search_result" else "documents"
            raise invalid_request(f"messages: citations must be enabled on all or none of the {noun}")


def _blocks_with_tool_results(content: Any) -> list[Any]:
    if not isinstance(content, list):
        return []
    blocks: list[Any] = []
    for block in content:
        blocks.append(block)
        if isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            blocks.extend(block["content"])
    return blocks


def _validate_tools(tools: Any, path: str) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_request(f"{path}tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid_request(f"{path}tools.{index}.name: Field required")
        if "type" not in tool and "input_schema" not in tool:
            raise invalid_request(f"{path}tools.{index}.input_schema: Field required")
        if tool["name"] in names:
            raise invalid_request(f"{path}tools: Tool names must be unique.")
        names.add(tool["name"])


def ensure_known_model(model: str, known_models: frozenset[str]) -> None:
    if model not in known_models:
        raise UpstreamError(404, f"model: {model}")
