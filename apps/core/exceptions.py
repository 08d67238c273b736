"""The one application error type. Interfaces map it to HTTP and websocket errors in one place."""

from typing import Any


class ApplicationError(Exception):
    """A failure the user can be told about: a stable `code`, a human message and optional extra data."""

    status_code = 400

    def __init__(self, message: str, *, code: str = "invalid", extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra or {}

    def as_frame(self) -> dict[str, Any]:
        """The websocket / JSON shape of this error."""
        return {"type": "error", "code": self.code, "message": self.message, **self.extra}


class NotFound(ApplicationError):
    """The object does not exist *for this user* (another user's object is indistinguishable)."""

    status_code = 404

    def __init__(self, message: str = "Not found.", *, code: str = "not_found") -> None:
        super().__init__(message, code=code)


class RateLimited(ApplicationError):
    status_code = 429

    def __init__(self, message: str = "Too many requests; slow down.", *, retry_after: int = 60) -> None:
        super().__init__(message, code="rate_limited", extra={"retry_after": retry_after})


class Forbidden(ApplicationError):
    """The user may not use this part of the site at all (e.g. a customer at the agents' inbox)."""

    status_code = 403

    def __init__(self, message: str = "Not allowed.", *, code: str = "forbidden") -> None:
        super().__init__(message, code=code)
