"""Visitor tokens and host-signed customer identities.

A visitor token is Django-signed (SECRET_KEY, its own salt) and names one visitor of one site: the
frame keeps it in its own storage and presents it on the websocket, so no third-party cookie is needed.
A token of another site is worthless here.

An identity is the host site's customer id with HMAC-SHA256(key=site secret, message=id) in hex, like
Intercom's and Chatwoot's identity verification: only the host's server, which holds the secret, can
make one.
"""

import hashlib
import hmac
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


def identity_signature(*, secret: str, user_id: str) -> str:
    """What the host's server computes: hex HMAC-SHA256 of the UTF-8 user id under the site's secret."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_signature_valid(*, secret: str, user_id: str, signature: str) -> bool:
    """Constant-time: how many leading characters match must not show in the response time."""
    expected = identity_signature(secret=secret, user_id=user_id)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8", "replace"))
