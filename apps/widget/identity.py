"""Visitor tokens and host-signed customer identities.

A visitor token is Django-signed (SECRET_KEY, its own salt) and names one visitor of one site: the
frame keeps it in its own storage and presents it on the websocket, so no third-party cookie is needed.
A token of another site is worthless here.

An identity is the host site's customer id with HMAC-SHA256(key=site secret, message=id) in hex, like
Intercom's and Chatwoot's identity verification: only the host's server, which holds the secret, can
make one. Such a hash is good until the secret changes, so a copied page could be replayed; a host can
bound that by signing an expiry too: message = id + "\n" + unix seconds, the expiry sent alongside.
"""

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

TOKEN_SALT = "apps.widget.visitor"  # noqa: S105 - a namespace for signing, not a secret
MAX_USER_ID_CHARS = 150  # Django's username length


@dataclass(frozen=True)
class VisitorClaim:
    site_id: int
    visitor_id: uuid.UUID


def visitor_token_make(*, site_id: int, visitor_id: uuid.UUID) -> str:
    return signing.dumps({"s": site_id, "v": str(visitor_id)}, salt=TOKEN_SALT, compress=False)


def visitor_token_read(token: object, *, site_id: int) -> VisitorClaim | None:
    """The claim of a valid, unexpired token made for `site_id`; None for anything else (forged, expired,
    another site's, malformed)."""
    if not isinstance(token, str) or not token or len(token) > 300:
        return None
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.WIDGET_VISITOR_TOKEN_MAX_AGE_SECONDS)
        claim = VisitorClaim(site_id=int(data["s"]), visitor_id=uuid.UUID(str(data["v"])))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return claim if claim.site_id == site_id else None


def identity_signature(*, secret: str, user_id: str, expires: int | str | None = None) -> str:
    """What the host's server computes: hex HMAC-SHA256 under the site's secret of the UTF-8 user id, or
    of the user id, a newline and the expiry (unix seconds) when it signs one. A newline never occurs in
    an id, so one message cannot be read as the other."""
    message = user_id if expires is None else f"{user_id}\n{expires}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def identity_signature_valid(*, secret: str, user_id: str, signature: str, expires: int | str | None = None) -> bool:
    """Constant-time: how many leading characters match must not show in the response time."""
    expected = identity_signature(secret=secret, user_id=user_id, expires=expires)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8", "replace"))


class IdentityError:
    """Why a presented identity was not accepted (sent to the frame as `identity_error`)."""

    MALFORMED = "malformed"  # missing half, too long, an expiry that is not a number
    FORGED = "forged"  # the signature is not the site's (logged as a warning)
    EXPIRED = "expired"  # correctly signed, past its expiry
    NOT_A_CUSTOMER = "not_a_customer"  # correctly signed for someone without an active customer account


def identity_check(*, secret: str, user_id: object, signature: object, expires: object) -> str:
    """ "" when `signature` signs `user_id` (and `expires`, if given, still in the future) under `secret`;
    else the `IdentityError` code. Checked in this order: a forged signature with a past expiry is forged."""
    if not isinstance(user_id, str) or not isinstance(signature, str) or not 0 < len(user_id) <= MAX_USER_ID_CHARS:
        return IdentityError.MALFORMED
    if "\n" in user_id or len(signature) > 128:
        return IdentityError.MALFORMED
    if expires in (None, ""):
        expires = None
    elif not isinstance(expires, str) or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return IdentityError.MALFORMED
    # The expiry is signed as the host sent it (digits), not re-formatted.
    if not identity_signature_valid(secret=secret, user_id=user_id, signature=signature, expires=expires):
        return IdentityError.FORGED
    if expires is not None and int(expires) <= time.time():
        return IdentityError.EXPIRED
    return ""
