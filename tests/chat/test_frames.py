"""The chat frame parser (apps/chat/frames.py): any input gets a typed frame or a documented client error."""

import json
import math
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.chat.frames import MessageFrame, StopFrame, frame_parse
from apps.core.exceptions import ApplicationError

# docs/protocol.md: the errors a frame itself can cause.
CLIENT_CODES = {
    "malformed",
    "unknown_type",
    "empty_message",
    "message_too_long",
    "invalid_text",
    "invalid_client_id",
    "invalid_answerer",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "stop", "Message", ""]) | json_values,
        "text": st.text(max_size=50) | json_values,
        "client_id": st.uuids().map(str) | json_values,
        "answerer": st.sampled_from(["assistant", "person", ""]) | json_values,
    },
)


def outcome(text_data) -> str:
    try:
        frame = frame_parse(text_data)
    except ApplicationError as exc:
        assert exc.code in CLIENT_CODES, exc.code
        assert exc.message
        return exc.code
    assert isinstance(frame, MessageFrame | StopFrame)
    return type(frame).__name__


@pytest.mark.parametrize(
    ("text_data", "code"),
    [
        ('{"type": ["message"], "text": "x"}', "unknown_type"),
        ('{"type": {"a": 1}}', "unknown_type"),
        ('{"type": 1}', "unknown_type"),
        ('{"type": null}', "unknown_type"),
        ("[" * 100_000 + "]" * 100_000, "malformed"),
        ('{"t": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed"),
        ('{"t": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}", "malformed"),
        ('{"type": "message", "text": NaN}', "malformed"),
        ('{"type": "stop", "x": Infinity}', "malformed"),
        ('{"type": "stop", "x": -Infinity}', "malformed"),
        ('{"type": "stop", "x": 1e999}', "malformed"),
        ('{"type": "stop", "x": ' + "9" * 5000 + "}", "malformed"),
        ('{"type": "stop", "type": "message"}', "malformed"),
        ("", "malformed"),
        (None, "malformed"),
        ('"stop"', "malformed"),
    ],
)
def test_odd_frames_get_a_client_error(text_data, code) -> None:
    assert outcome(text_data) == code


def test_nesting_is_refused_past_its_limit_before_parsing_and_brackets_in_strings_do_not_count(monkeypatch) -> None:
    from apps.chat import frames

    def nested(depth: int) -> str:
        return '{"type": "stop", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert frame_parse(nested(frames.MAX_FRAME_DEPTH)) == StopFrame()
    assert outcome(nested(frames.MAX_FRAME_DEPTH + 1)) == "malformed"
    # A question about brackets is text, however many it holds (quotes escaped inside it too).
    text = '[{"\\"' * 200
    assert frame_parse(json.dumps({"type": "message", "text": text})).text == text.strip()
    # Too deep never reaches the parser, which would recurse to the interpreter's limit first.
    monkeypatch.setattr(frames.json, "loads", lambda *a, **k: pytest.fail("parsed a frame nested too deeply"))
    assert outcome("[" * 100_000 + "]" * 100_000) == "malformed"


def test_a_well_formed_message_is_typed_and_its_client_id_echoed_on_errors() -> None:
    client_id = str(uuid.uuid4()).upper()
    frame = frame_parse(json.dumps({"type": "message", "text": "  Hi  ", "client_id": client_id}))
    assert frame == MessageFrame(text="Hi", client_id=uuid.UUID(client_id), client_id_sent=client_id)
    assert frame_parse('{"type": "stop"}') == StopFrame()

    with pytest.raises(ApplicationError) as caught:
        frame_parse(json.dumps({"type": "message", "text": " ", "client_id": client_id}))
    assert caught.value.as_frame()["client_id"] == client_id and caught.value.code == "empty_message"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame_like)
def test_any_json_object_gets_a_frame_or_a_client_error(value) -> None:
    result = outcome(json.dumps(value))
    if value.get("type") not in ("message", "stop"):
        assert result == "unknown_type"
    if result == "MessageFrame":
        assert isinstance(value["text"], str) and value["text"].strip()
        assert value.get("answerer") in (None, "", "assistant", "person")


@settings(max_examples=300, deadline=None)
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_any_text_gets_a_frame_or_a_client_error(text) -> None:
    outcome(text)


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]))
def test_non_standard_json_anywhere_is_refused(value, constant) -> None:
    document = json.dumps({"type": "stop", "v": value, "bad": "__BAD__"}).replace('"__BAD__"', constant)
    assert outcome(document) == "malformed"
    assert not math.isfinite(float(constant))
