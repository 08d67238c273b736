"""Fault injection: errors, latency, broken streams and malformed bodies, on demand.

Configured as JSON (env var `UPSTREAM_FAULTS` at startup, or `PUT /_control/faults` at run time)::

    {"error_rates": {"429": 0.1, "529": 0.05},
     "force_errors": [529, {"status": 429, "model": "claude-opus-4-6", "count": 2}],
     "latency_ms": 50, "first_token_ms": 300, "token_ms": 5,
     "cut_stream_after_tokens": 10, "cut_mode": "error",
     "malformed": null, "models": null,
     "per_model": {"claude-haiku-4-5": {"latency_ms": 0}},
     "batch_error_rate": 0.0, "batch_expire_rate": 0.0, "batch_malformed_count": 0, "seed": 7}

Traffic faults (rates, latency, stream cuts, malformed bodies) apply to `POST /v1/messages` only, so a
forced error is never swallowed by a token count or a batch poll.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

CutMode = Literal["error", "drop"]
MalformedMode = Literal["empty_body", "invalid_json", "prose_instead_of_json"]

CUT_MODES: frozenset[str] = frozenset({"error", "drop"})
MALFORMED_MODES: frozenset[str] = frozenset({"empty_body", "invalid_json", "prose_instead_of_json"})
FAULTS_ENV_VAR = "UPSTREAM_FAULTS"

# Fields a `per_model` entry may override: the ones that describe how one request is treated.
PER_REQUEST_FIELDS: frozenset[str] = frozenset(
    {
        "error_rates",
        "retry_after_seconds",
        "latency_ms",
        "first_token_ms",
        "token_ms",
        "cut_stream_after_tokens",
        "cut_mode",
        "malformed",
    }
)


@dataclass
class ForcedError:
    status: int
    model: str | None = None  # None: the next request for any model
    count: int = 1
    message: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> ForcedError:
        if isinstance(value, int):
            return cls(status=value)
        if isinstance(value, dict):
            unknown = set(value) - {"status", "model", "count", "message"}
            if unknown or not isinstance(value.get("status"), int):
                raise ValueError(f"force_errors entry {value!r}: needs an int 'status'; unknown keys {sorted(unknown)}")
            return cls(
                status=value["status"],
                model=value.get("model"),
                count=int(value.get("count", 1)),
                message=value.get("message"),
            )
        raise ValueError(f"force_errors entry {value!r}: expected a status int or an object")


@dataclass
class FaultConfig:
    error_rates: dict[str, float] = field(default_factory=dict)
    force_errors: list[ForcedError] = field(default_factory=list)
    retry_after_seconds: float = 1.0
    latency_ms: int = 0
    first_token_ms: int = 0
    token_ms: int = 0
    cut_stream_after_tokens: int | None = None
    cut_mode: CutMode = "error"
    malformed: MalformedMode | None = None
    # How many more /v1/messages requests get `malformed` (None: every one). "Answers malformed once": 1.
    malformed_count: int | None = None
    batch_error_rate: float = 0.0
    batch_expire_rate: float = 0.0
    # The next N batch requests processed (any batch) answer in prose where JSON was asked for: a malformed
    # structured answer inside a batch, for testing clarifying retries.
    batch_malformed_count: int = 0
    batch_processing_seconds: float | None = None  # overrides EmulatorConfig.batch_processing_seconds
    # Delay the batch-create response *after* the batch is stored: the window in which a client that
    # dies has a batch upstream whose id it never recorded (crash-safety tests).
    batch_create_latency_ms: int = 0
    models: list[str] | None = None  # traffic faults apply only to these models (None: all)
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values = dict(data)
        values["force_errors"] = [ForcedError.from_json(item) for item in data.get("force_errors") or []]
        values["error_rates"] = {str(status): float(rate) for status, rate in (data.get("error_rates") or {}).items()}
        values["per_model"] = dict(data.get("per_model") or {})
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_env(cls) -> FaultConfig:
        raw = os.environ.get(FAULTS_ENV_VAR, "").strip()
        return cls.from_dict(json.loads(raw)) if raw else cls()

    def validate(self) -> None:
        if self.cut_mode not in CUT_MODES:
            raise ValueError(f"cut_mode must be one of {sorted(CUT_MODES)}")
        if self.malformed is not None and self.malformed not in MALFORMED_MODES:
            raise ValueError(f"malformed must be one of {sorted(MALFORMED_MODES)} or null")
        for status, rate in self.error_rates.items():
            if not status.isdigit() or not 0.0 <= rate <= 1.0:
                raise ValueError(f"error_rates: {status!r}: {rate} must map a status code to a rate in [0, 1]")
        if sum(self.error_rates.values()) > 1.0:
            raise ValueError("error_rates must sum to at most 1")
        for model, overrides in self.per_model.items():
            unknown = set(overrides) - PER_REQUEST_FIELDS
            if unknown:
                raise ValueError(
                    f"per_model[{model!r}] may only set {sorted(PER_REQUEST_FIELDS)}, not {sorted(unknown)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_model(self, model: str) -> FaultConfig:
        """The faults one request for `model` sees: scoping by `models`, then `per_model` overrides."""
        effective = self
        if self.models is not None and model not in self.models:
            effective = dataclasses.replace(self, **_neutral_request_faults())
        overrides = self.per_model.get(model)
        if overrides:
            effective = dataclasses.replace(effective, **overrides)
            effective.error_rates = {str(key): float(value) for key, value in effective.error_rates.items()}
        return effective


def _neutral_request_faults() -> dict[str, Any]:
    defaults = FaultConfig()
    return {name: getattr(defaults, name) for name in PER_REQUEST_FIELDS}


class FaultInjector:
    """Holds the live fault config; decides, request by request, which fault (if any) fires."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.replace(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)

    def take_forced_error(self, model: str) -> ForcedError | None:
        """Consume the first queued error that matches `model`, if any."""
        with self._lock:
            for entry in self._config.force_errors:
                if entry.count > 0 and entry.model in (None, model):
                    entry.count -= 1
                    self._config.force_errors = [item for item in self._config.force_errors if item.count > 0]
                    return ForcedError(status=entry.status, model=entry.model, count=1, message=entry.message)
            return None

    def take_malformed(self, faults: FaultConfig) -> MalformedMode | None:
        """The malformed mode this request gets, consuming one of `malformed_count` when it is set."""
        if faults.malformed is None:
            return None
        with self._lock:
            if self._config.malformed_count is None:
                return faults.malformed
            if self._config.malformed_count <= 0:
                return None
            self._config.malformed_count -= 1
            return faults.malformed

    def take_batch_malformed(self) -> bool:
        """Whether the batch request being processed answers malformed, consuming one of batch_malformed_count."""
        with self._lock:
            if self._config.batch_malformed_count <= 0:
                return False
            self._config.batch_malformed_count -= 1
            return True

    def roll_error_status(self, faults: FaultConfig) -> int | None:
        """Pick an error status with the configured probabilities (one draw per request)."""
        if not faults.error_rates:
            return None
        with self._lock:
            draw = self._random.random()
        threshold = 0.0
        for status, rate in sorted(faults.error_rates.items()):
            threshold += rate
            if draw < threshold:
                return int(status)
        return None
