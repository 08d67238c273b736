"""Visitor tokens and signed identities."""

import hashlib
import hmac
import time
import uuid

import pytest
from django.core import signing

from apps.widget.identity import (
    TOKEN_SALT,
    identity_check,
    identity_signature,
    identity_signature_valid,
    visitor_token_make,
    visitor_token_read,
)

VISITOR = uuid.UUID("9b0f3a3e-1111-4222-8333-944455556666")


def test_a_token_names_its_visitor_on_its_own_site_only():
    token = visitor_token_make(site_id=7, visitor_id=VISITOR)
    assert visitor_token_read(token, site_id=7).visitor_id == VISITOR
    assert visitor_token_read(token, site_id=8) is None


@pytest.mark.parametrize("token", [None, "", 42, "garbage", "x" * 400])
def test_malformed_tokens_name_nobody(token):
    assert visitor_token_read(token, site_id=7) is None


def test_a_tampered_token_names_nobody():
    token = visitor_token_make(site_id=7, visitor_id=VISITOR)
    forged = signing.dumps({"s": 7, "v": str(uuid.uuid4())}, salt=TOKEN_SALT, key="not-our-secret-key")
    assert visitor_token_read(forged, site_id=7) is None
    assert visitor_token_read(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), site_id=7) is None


def test_an_expired_token_names_nobody(settings):
    token = visitor_token_make(site_id=7, visitor_id=VISITOR)
    settings.WIDGET_VISITOR_TOKEN_MAX_AGE_SECONDS = -1
    assert visitor_token_read(token, site_id=7) is None


def test_the_signature_is_hex_hmac_sha256_of_the_user_id_under_the_secret():
    # What a host computes with its own language's standard library (docs/widget.md).
    expected = hmac.new(b"s3cret", b"alice", hashlib.sha256).hexdigest()
    assert identity_signature(secret="s3cret", user_id="alice") == expected
    assert identity_signature_valid(secret="s3cret", user_id="alice", signature=expected.upper())
    assert not identity_signature_valid(secret="s3cret", user_id="bob", signature=expected)
    assert not identity_signature_valid(secret="other", user_id="alice", signature=expected)
    assert not identity_signature_valid(secret="s3cret", user_id="alice", signature="ü" + expected[1:])


def test_an_expiry_is_signed_with_the_id_and_checked_after_the_signature():
    ahead, past = str(int(time.time()) + 60), str(int(time.time()) - 60)
    until = hmac.new(b"s3cret", f"alice\n{ahead}".encode(), hashlib.sha256).hexdigest()
    assert identity_check(secret="s3cret", user_id="alice", signature=until, expires=ahead) == ""
    assert identity_check(secret="s3cret", user_id="alice", signature=until, expires=None) == "forged"
    plain = identity_signature(secret="s3cret", user_id="alice")
    assert identity_check(secret="s3cret", user_id="alice", signature=plain, expires=ahead) == "forged"
    old = identity_signature(secret="s3cret", user_id="alice", expires=past)
    assert identity_check(secret="s3cret", user_id="alice", signature=old, expires=past) == "expired"
    assert identity_check(secret="guess", user_id="alice", signature=old, expires=past) == "forged"


@pytest.mark.parametrize(
    ("user_id", "signature", "expires"),
    [
        (None, "ab", None),
        ("alice", None, None),
        ("", "ab", None),
        ("a\nb", "ab", None),
        ("alice", "ab", "-1"),
        ("alice", "ab", "1e9"),
        ("alice", "ab", "١٢٣"),
        ("alice", "ab", 123),
        ("alice", "a" * 129, None),
    ],
)
def test_a_malformed_identity_is_refused_before_any_signature_check(user_id, signature, expires):
    assert identity_check(secret="s3cret", user_id=user_id, signature=signature, expires=expires) == "malformed"
