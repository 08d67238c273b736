"""Models Anthropic has deprecated, from the installed SDK's own data (`anthropic._data.DEPRECATED_MODELS`,
model id → end-of-life date, the list the SDK's `messages.create` warns from). Upgrading the SDK
(`make lock`) brings the new list; nothing here is maintained by hand.

Three places say so: a system check at start-up (settings and routing rules naming one), the
routing-rule admin on save, and the first call to such a model in each process (a log warning).
"""

import logging
import threading
from collections.abc import Iterable

try:
    from anthropic._data import DEPRECATED_MODELS as _SDK_DEPRECATED_MODELS
except ImportError:  # a private module: an SDK without it knows of no deprecations
    _SDK_DEPRECATED_MODELS: dict[str, str] = {}

logger = logging.getLogger(__name__)

_warned_models: set[str] = set()
_warned_lock = threading.Lock()


def model_end_of_life(model: str) -> str | None:
    """The end-of-life date the SDK gives for a deprecated model ("January 22nd, 2027"); "" when the
    SDK lists it without one; None when it is not deprecated."""
    if model not in _SDK_DEPRECATED_MODELS:
        return None
    return _SDK_DEPRECATED_MODELS[model] or ""


def model_deprecation_text(model: str) -> str | None:
    """One sentence for admins and logs, or None for a model that is not deprecated."""
    end_of_life = model_end_of_life(model)
    if end_of_life is None:
        return None
    when = f"reaches end of life on {end_of_life}" if end_of_life else "has no end-of-life date in the SDK yet"
    return f"{model} is deprecated by Anthropic and {when}; requests to it fail after that date"


def deprecated_models_in(models: Iterable[str]) -> list[str]:
    """The deprecated ones among `models`, each once, in order."""
    return list(dict.fromkeys(model for model in models if model in _SDK_DEPRECATED_MODELS))


def model_call_warn(model: str) -> None:
    """Log a warning the first time this process calls a deprecated model (not on every call: an
    answer's hot path stays quiet and cheap — one set lookup)."""
    if model not in _SDK_DEPRECATED_MODELS or model in _warned_models:
        return
    with _warned_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    logger.warning("calling a deprecated model: %s", model_deprecation_text(model))
